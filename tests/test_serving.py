"""The pyfunc generator: logged into a real SQLite MLflow store, loaded back, and served by the
real `mlflow models serve` from a folder where this repository's code is not importable."""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import keras
import mlflow
import pandas as pd
import pytest
import requests
from mlflow.exceptions import MlflowException

from pipeline.config import TrainParams
from pipeline.errors import PipelineError
from pipeline.model import build_sequence_model
from pipeline.sampling import SamplingSettings
from pipeline.serving import (
    CARRIED_MODULES,
    MAX_PROMPT_CHARS,
    MAX_ROWS,
    MAX_WORK,
    DeadlineExceeded,
    budget_from_params,
    check_work,
    generate_texts,
    log_generator,
    read_vocabulary,
    settings_from_params,
)
from tests.support.imports import pipeline_closure, source_paths
from tests.support.project import ROOT, clean_environment
from tests.support.servers import free_port

VOCABULARY = list("\n abcdefgh")
NAME = "tiny-generator"
STARTUP_S = 90


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Iterator[str]:
    """A SQLite store whose registry holds version 1 of `NAME`; yields its tracking URI."""
    folder = tmp_path_factory.mktemp("store")
    keras.utils.set_random_seed(0)
    model = build_sequence_model(len(VOCABULARY), TrainParams(embedding_dim=8, units=16, layers=1))
    model.save(folder / "model.keras")
    (folder / "vocab.json").write_text(json.dumps({"chars": VOCABULARY}))
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("serving", (folder / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        log_generator(folder / "model.keras", folder / "vocab.json", NAME)
    yield uri
    mlflow.set_tracking_uri(None)  # back to the default resolution, not a pinned copy of it


@pytest.fixture(scope="module")
def generator(store):
    return mlflow.pyfunc.load_model(f"models:/{NAME}/1")


def check_texts(texts: list[str], length: int) -> None:
    assert all(len(text) == length and set(text) <= set(VOCABULARY) for text in texts), texts


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


@pytest.mark.parametrize(
    ("rows", "prompt_length", "length", "message"),
    [
        (1, MAX_PROMPT_CHARS + 1, 1, f"a prompt has {MAX_PROMPT_CHARS + 1} characters; at most"),
        (MAX_ROWS + 1, 1, 1, f"between 1 and {MAX_ROWS} prompts, got {MAX_ROWS + 1}"),
        (MAX_ROWS, 1, MAX_WORK // MAX_ROWS, f"characters of work; at most {MAX_WORK}"),
    ],
)
def test_check_work_refuses_oversized_requests(rows, prompt_length, length, message):
    with pytest.raises(PipelineError, match=message):
        check_work(["a" * prompt_length] * rows, length)


def test_check_work_accepts_the_largest_request():
    check_work(["a" * 999] * 1000, 1)


def test_budget_from_params():
    assert budget_from_params(None, 50.0) == 50.0
    assert budget_from_params({"timeout_s": 2.5}, 50.0) == 2.5
    assert budget_from_params({"timeout_s": 500.0}, 50.0) == 50.0
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(PipelineError, match="timeout_s must be a finite number"):
            budget_from_params({"timeout_s": bad}, 50.0)


def test_predict_takes_a_plain_dict(generator):
    """The README's Python snippet: `predict({"prompt": [...]})`."""
    params = {"length": 10, "temperature": 0}
    served = generator.predict({"prompt": ["ab", "bad"]}, params=params)
    expected = generator.predict(pd.DataFrame({"prompt": ["ab", "bad"]}), params=params)
    assert served.equals(expected) and len(served) == 2


def test_settings_from_params():
    assert settings_from_params(None) == (200, SamplingSettings(temperature=0.8))
    length, settings = settings_from_params({"length": 5, "top_k": 3, "top_p": 0.5, "seed": 9})
    assert (length, settings) == (5, SamplingSettings(0.8, top_k=3, top_p=0.5, seed=9))
    with pytest.raises(PipelineError, match="length must be between 1 and 100000, got 100001"):
        settings_from_params({"length": 100_001})


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "not a vocabulary file"), ('{"chars": "ab"}', "list of single characters")],
)
def test_read_vocabulary_rejects_a_bad_file(tmp_path, content, message):
    (tmp_path / "vocab.json").write_text(content)
    with pytest.raises(PipelineError, match=message):
        read_vocabulary(tmp_path / "vocab.json")


def test_the_logged_model_carries_exactly_the_modules_it_imports(store):
    needed = {Path(path).name for path in source_paths(pipeline_closure("pipeline.serving"))}
    assert set(CARRIED_MODULES) == needed
    code = Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}/1")) / "code" / "pipeline"
    assert sorted(path.name for path in code.iterdir()) == sorted(CARRIED_MODULES)


def test_log_generator_needs_both_files(tmp_path):
    with pytest.raises(PipelineError, match="model.keras not found"):
        log_generator(tmp_path / "model.keras", tmp_path / "vocab.json", NAME)


# The venv may hold this project as an editable install (`pip install -e .`), which makes
# `pipeline` importable from anywhere. Every Python process of the server (the mlflow CLI, then
# uvicorn) imports this `sitecustomize` at start-up and drops that route and the repository root.
HIDE_REPOSITORY = """\
import os
import sys

root = os.environ["CHARLSTM_HIDDEN_ROOT"]
sys.path[:] = [entry for entry in sys.path if os.path.realpath(entry or ".") != root]
sys.meta_path[:] = [
    finder for finder in sys.meta_path
    if not getattr(finder, "__module__", "").startswith("__editable__")
]
"""


def outside_environment(store: str, folder: Path) -> dict[str, str]:
    """A clean environment with the store's URI and no route to this repository's code."""
    (folder / "hide").mkdir()
    (folder / "hide" / "sitecustomize.py").write_text(HIDE_REPOSITORY)
    env = clean_environment()
    env["PYTHONPATH"] = str(folder / "hide")
    env["CHARLSTM_HIDDEN_ROOT"] = os.path.realpath(ROOT)
    env["MLFLOW_TRACKING_URI"] = store
    return env


@pytest.fixture(scope="module")
def server(store, tmp_path_factory) -> Iterator[str]:
    """`mlflow models serve` on a free port; yields its base URL and stops it afterwards."""
    folder = tmp_path_factory.mktemp("outside")
    env = outside_environment(store, folder)
    probe = subprocess.run(
        [sys.executable, "-c", "import pipeline"],
        check=False,
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
    )
    assert "No module named 'pipeline'" in probe.stderr
    port = free_port()
    command = [
        "mlflow",
        "models",
        "serve",
        "-m",
        f"models:/{NAME}/1",
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    log_path = folder / "server.log"
    with log_path.open("w") as log:
        # A session of its own, so the teardown stops the server and its workers together.
        process = subprocess.Popen(
            command, cwd=folder, env=env, stdout=log, stderr=log, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while not ping(url):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the server did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def ping(url: str) -> bool:
    try:
        return requests.get(f"{url}/ping", timeout=2).status_code == 200
    except (requests.ConnectionError, requests.Timeout):  # not listening yet, or busy loading
        return False


def invoke(url: str, body: dict) -> requests.Response:
    # json.dumps, not `json=`: requests refuses NaN, which a hostile client may well send.
    data = json.dumps(body)
    headers = {"Content-Type": "application/json"}
    return requests.post(f"{url}/invocations", data=data, headers=headers, timeout=70)


def test_served_generator_answers_with_text(server):
    body = {
        "dataframe_records": [{"prompt": "bad cafe"}, {"prompt": "ab"}],
        "params": {"length": 30, "temperature": 1.0, "top_k": 5, "top_p": 0.9, "seed": 11},
    }
    first = invoke(server, body)
    assert first.status_code == 200, first.text
    texts = [row["text"] for row in first.json()["predictions"]]
    check_texts(texts, 30)
    again = invoke(server, body)
    assert [row["text"] for row in again.json()["predictions"]] == texts


def test_served_generator_takes_dataframe_split_and_defaults(server):
    body = {"dataframe_split": {"columns": ["prompt"], "data": [["abc"]]}}
    response = invoke(server, body)
    assert response.status_code == 200, response.text
    check_texts([row["text"] for row in response.json()["predictions"]], 200)


def test_served_generator_rejects_a_bad_prompt_with_400(server):
    response = invoke(server, {"dataframe_records": [{"prompt": "ab§"}]})
    assert response.status_code == 400
    assert "not in the model's vocabulary" in response.json()["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (  # ~0.5 MB in one prompt
            {"dataframe_records": [{"prompt": "ab" * 250_000}]},
            "a prompt has 500000 characters; at most",
        ),
        (
            {"dataframe_records": [{"prompt": "ab"}] * 1000, "params": {"length": 100_000}},
            "characters of work; at most",
        ),
        ({"dataframe_records": [{"prompt": "ab"}] * 5000}, "between 1 and 1024 prompts"),
        ({"dataframe_records": [{"prompt": "ab"}], "params": {"temperature": float("nan")}}, "finite"),
    ],
    ids=["long-prompt", "too-much-work", "too-many-rows", "nan-temperature"],
)
def test_served_generator_refuses_oversized_requests_at_once(server, body, message):
    started = time.monotonic()
    response = invoke(server, body)
    assert response.status_code == 400, response.text[:500]
    assert message in response.json()["message"][-2000:]
    assert time.monotonic() - started < 10


def test_served_generator_cuts_off_a_slow_request_then_answers_the_next(server):
    started = time.monotonic()
    body = {"dataframe_records": [{"prompt": "ab"}] * 8, "params": {"length": 100_000}}
    response = invoke(server, {**body, "params": {**body["params"], "timeout_s": 1.0}})
    assert response.status_code == 504, response.text[:500]
    assert "over the 1 s budget" in response.json()["message"]
    assert time.monotonic() - started < 10
    normal = invoke(server, {"dataframe_records": [{"prompt": "abc"}], "params": {"length": 20}})
    assert normal.status_code == 200, normal.text
    check_texts([row["text"] for row in normal.json()["predictions"]], 20)
