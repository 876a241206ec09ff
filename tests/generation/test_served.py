"""pipeline/generation/served.py: the pyfunc generator logged into a real SQLite MLflow store and
loaded back,
its request checks and limits. tests/scenarios/test_served_generator.py serves it over HTTP."""

import time
from collections.abc import Iterator

import mlflow
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from pipeline.core.errors import PipelineError
from pipeline.generation.decoding import SamplingSettings
from pipeline.generation.requests import (
    MAX_ROWS,
    MAX_WORK_IN_FLIGHT,
)
from pipeline.generation.served import DeadlineExceeded, generate_texts
from tests.support.generator import NAME, check_texts, generator_store


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Iterator[str]:
    """A SQLite store whose registry holds version 1 of `NAME`; yields its tracking URI."""
    with generator_store(tmp_path_factory.mktemp("store")) as uri:
        yield uri


@pytest.fixture(scope="module")
def generator(store):
    return mlflow.pyfunc.load_model(f"models:/{NAME}/1")


def test_predict_continues_prompts_of_different_lengths(generator):
    prompts = pd.DataFrame({"prompt": ["ab", "bad cafe", "ab", "Cab"]})
    params = {"length": 25, "temperature": 1.0, "seed": 3}
    first = generator.predict(prompts, params=params)
    assert list(first.columns) == ["text"]
    check_texts(list(first["text"]), 25)
    assert first.equals(generator.predict(prompts, params=params))
    assert not first.equals(generator.predict(prompts, params={**params, "seed": 4}))
    # Two rows with one prompt are two samples, not one text twice.
    assert first["text"][0] != first["text"][2]


def test_predict_uses_the_default_settings(generator):
    texts = generator.predict(pd.DataFrame({"prompt": ["abc"]}))["text"]
    check_texts(list(texts), 200)


def test_greedy_matches_the_sampler_on_the_same_model(generator, store):
    """Served text is the project's sampler's text: greedy from the prompt, nothing else."""
    sampler = generator.unwrap_python_model().sampler
    expected = sampler.generate(["abc"], 12, SamplingSettings(temperature=0))
    served = generator.predict(pd.DataFrame({"prompt": ["abc"]}), {"length": 12, "temperature": 0})
    assert list(served["text"]) == expected


@pytest.mark.parametrize(
    ("prompt", "params", "message"),
    [
        ("ab§", {}, "not in the model's vocabulary: '§'"),
        ("", {}, "the prompt is empty"),
        ("ab", {"length": 0}, "length must be between 1 and"),
        ("ab", {"top_p": 1.5}, r"top-p must be in \(0, 1\]"),
    ],
)
def test_predict_rejects_bad_requests(generator, prompt, params, message):
    with pytest.raises(MlflowException, match=message):
        generator.predict(pd.DataFrame({"prompt": [prompt]}), params=params)


def test_rows_of_different_prompt_lengths_run_as_one_batch_and_keep_their_order(generator):
    """Left padding must not change a row: greedy text of a mixed batch is each prompt's own."""
    sampler = generator.unwrap_python_model().sampler
    greedy = SamplingSettings(temperature=0)
    prompts = ["ab", "bad cafe", "c", "ba"]
    texts = generate_texts(sampler, prompts, 15, greedy)
    assert texts == [sampler.generate([prompt], 15, greedy)[0] for prompt in prompts]
    seeded = SamplingSettings(temperature=1.0, seed=2)
    assert generate_texts(sampler, prompts, 15, seeded) == sampler.generate(prompts, 15, seeded)
    with pytest.raises(PipelineError, match=f"between 1 and {MAX_ROWS} prompts, got 0"):
        generate_texts(sampler, [], 15, seeded)


def test_generation_stops_at_its_deadline(generator):
    sampler = generator.unwrap_python_model().sampler
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match=r"over the 0\.01 s budget, with \d+ of 50000"):
        generate_texts(sampler, ["ab"], 50_000, SamplingSettings(), budget_s=0.01)
    assert time.monotonic() - started < 5


def test_predict_takes_a_plain_dict(generator):
    """docs/serving.md's Python snippet: `predict({"prompt": [...]})`."""
    params = {"length": 10, "temperature": 0}
    served = generator.predict({"prompt": ["ab", "bad"]}, params=params)
    expected = generator.predict(pd.DataFrame({"prompt": ["ab", "bad"]}), params=params)
    assert served.equals(expected) and len(served) == 2


def test_predict_refuses_work_past_the_bound_in_flight_with_a_503(generator):
    """While the process holds as much work as it takes on, a request is refused at once with
    TEMPORARILY_UNAVAILABLE (HTTP 503); a request over the per-request bounds stays a 400."""
    in_flight = generator.unwrap_python_model().in_flight
    prompts = pd.DataFrame({"prompt": ["ab"]})
    with in_flight.admit(MAX_WORK_IN_FLIGHT):
        started = time.monotonic()
        with pytest.raises(MlflowException, match="the server is busy") as busy:
            generator.predict(prompts, params={"length": 10})
        assert time.monotonic() - started < 1
        assert busy.value.get_http_status_code() == 503
        with pytest.raises(MlflowException, match="characters of work; at most") as too_big:
            generator.predict(pd.DataFrame({"prompt": ["ab"] * 1000}), params={"length": 99_000})
        assert too_big.value.get_http_status_code() == 400
    assert in_flight.used == 0
    assert len(generator.predict(prompts, params={"length": 10})["text"][0]) == 10
