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
    MAX_ROWS,
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


def test_rows_are_batched_by_prompt_length_and_keep_their_order(generator):
    sampler = generator.unwrap_python_model().sampler
    settings = SamplingSettings(temperature=1.0, seed=2)
    texts = generate_texts(sampler, ["ab", "abc", "ba"], 15, settings)
    assert texts[0::2] == sampler.generate(["ab", "ba"], 15, settings)
    assert texts[1:2] == sampler.generate(["abc"], 15, settings)
    with pytest.raises(PipelineError, match=f"between 1 and {MAX_ROWS} prompts, got 0"):
        generate_texts(sampler, [], 15, settings)


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
    return requests.post(f"{url}/invocations", json=body, timeout=60)


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
