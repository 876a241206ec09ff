"""Team workflows for real: an MLflow tracking server, a DVC remote (queued experiments: the
sweep test in tests/test_sweep.py and the blocks of README.md and docs/ in tests/test_readme.py).

Each test builds a temporary git + DVC repository holding the pipeline and a tiny corpus.
"""

import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator

import pytest

from tests.support.project import clean_environment, make_repo, run
from tests.support.servers import free_port, wait_for_http

pytestmark = pytest.mark.slow


@pytest.fixture
def mlflow_server(tmp_path) -> Iterator[str]:
    port = free_port()
    store = tmp_path / "server"
    store.mkdir()
    env = clean_environment()
    server = subprocess.Popen(
        [
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{store / 'mlflow.db'}",
            "--artifacts-destination",
            str(store / "artifacts"),
            "--workers",
            "1",
        ],
        cwd=store,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health", server)
        yield url
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def rest(url: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{url}/api/2.0/mlflow/{path}", data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def test_the_pipeline_logs_to_a_tracking_server(tmp_path, mlflow_server):
    env = clean_environment() | {"MLFLOW_TRACKING_URI": mlflow_server}
    repo = make_repo(tmp_path / "repo", env)
    run(["dvc", "repro"], repo, env)
    assert not (repo / "mlflow.db").exists()  # nothing fell back to the local store

    experiment = rest(mlflow_server, "experiments/get-by-name?experiment_name=tiny")["experiment"]
    runs = rest(mlflow_server, "runs/search", {"experiment_ids": [experiment["experiment_id"]]})
    (found,) = runs["runs"]
    params = {p["key"]: p["value"] for p in found["data"]["params"]}
    metrics = {m["key"]: m["value"] for m in found["data"]["metrics"]}
    assert params["train.units"] == "16"
    assert metrics["test.bpc"] > 0
    model = rest(mlflow_server, "registered-models/get?name=tiny-model")["registered_model"]
    assert model["latest_versions"][0]["run_id"] == found["info"]["run_id"]
    artifacts = rest(mlflow_server, f"artifacts/list?run_id={found['info']['run_id']}")
    assert {"evaluation", "plots", "validation"} <= {f["path"] for f in artifacts["files"]}


def test_push_to_a_local_remote_and_pull_into_a_fresh_clone(tmp_path):
    env = clean_environment()
    repo = make_repo(tmp_path / "repo", env)
    remote = tmp_path / "remote"
    run(["dvc", "remote", "add", "-d", "shared", str(remote)], repo, env)
    run(["dvc", "repro"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-q", "-m", "reproduced"], repo, env)
    run(["dvc", "push"], repo, env)
    assert any(remote.rglob("*")), "nothing was pushed"

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
    assert not (clone / "models/model.keras").exists()
    run(["dvc", "pull"], clone, env)
    for output in ("data/raw/corpus.txt", "data/encoded/train_ids.npy", "models/model.keras"):
        assert (clone / output).is_file(), output
    result = run(["dvc", "repro"], clone, env)
    assert "Data and pipelines are up to date." in result.stdout
