"""The pyfunc generator served by the real `mlflow models serve`, from a folder where this
repository's code is not importable: answers, refusals with 400, limits on work per request."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.generator import NAME, check_texts, generator_store
from tests.support.project import ROOT, clean_environment
from tests.support.servers import free_port

STARTUP_S = 300  # loading TensorFlow and the model takes minutes on a busy 2-core machine


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Iterator[str]:
    """A SQLite store whose registry holds version 1 of `NAME`; yields its tracking URI."""
    with generator_store(tmp_path_factory.mktemp("store")) as uri:
        yield uri


# The venv may hold this project as an editable install (`pip install -e .`), which makes
# `pipeline` importable from anywhere. Every Python process of the server (the mlflow CLI, then
# uvicorn) imports this `sitecustomize` at start-up and drops that route and the repository root.
HIDE_REPOSITORY = """\
import os
import sys
import threading

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
        (
            {"dataframe_records": [{"prompt": "ab"}], "params": {"temperature": float("nan")}},
            "finite",
        ),
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


def test_a_saturated_server_answers_a_normal_request_within_3_s(server):
    """`mlflow models serve` alone, six big in-bounds requests at once: the model takes two and
    refuses the rest at once with 503 (behind `make serve`, nginx adds Retry-After)."""
    big = {"dataframe_records": [{"prompt": "ab"}] * 10, "params": {"length": 99_000}}
    big["params"]["timeout_s"] = 10.0
    normal = {"dataframe_records": [{"prompt": "abc"}], "params": {"length": 20}}
    assert invoke(server, normal).status_code == 200  # XLA compiles a new shape once, unloaded
    answers: list[requests.Response] = []
    threads = [
        threading.Thread(target=lambda: answers.append(invoke(server, big))) for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    time.sleep(2)
    started = time.monotonic()
    response = invoke(server, normal)
    elapsed = time.monotonic() - started
    for thread in threads:
        thread.join()
    assert response.status_code == 200, response.text[:300]
    assert elapsed < 3, elapsed
    refused = [answer for answer in answers if answer.status_code == 503]
    assert len(refused) == 4, sorted(answer.status_code for answer in answers)
    assert all("the server is busy" in answer.json()["message"] for answer in refused)
