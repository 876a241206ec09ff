"""A real `python -m pipeline.train`, stopped by SIGTERM and re-run, and one that diverges.

Each test works in a temporary repository (the pipeline package, a tiny params.yaml, data/encoded
made by the real clean and encode stages, and an MLflow SQLite store there). Training is made
slow enough (60 steps an epoch) that the run is still going when the test, having seen the first
epoch's checkpoint appear, sends SIGTERM.
"""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.support.corpora import CORPUS
from tests.support.project import Project, clean_environment, copy_project, run_module, tiny_params

CHECKPOINT_STATE = Path("models/.checkpoints/train/state.json")
EPOCHS = 5


pytestmark = pytest.mark.slow


def make_repo(path: Path, **train: object) -> Path:
    """The pipeline, tiny params (`train` keys changed) and data/encoded from the real stages."""
    params = tiny_params(
        encode={"stride": 2},
        train={
            "epochs": EPOCHS,
            "patience": EPOCHS,
            "steps_per_epoch": 60,
            "dropout": 0.1,
            "distribution": "none",
            **train,
        },
        mlflow={"experiment": "resume", "registered_model": "resume-model"},
    )
    project = Project(copy_project(path, params, extras=()), params)
    (path / "data/raw").mkdir(parents=True)
    (path / "data/raw/corpus.txt").write_bytes(CORPUS)
    (path / "reports/validation").mkdir(parents=True)  # train logs the validation report
    (path / "reports/validation/index.html").write_text("<html></html>\n")
    (path / "reports/validation.json").write_text('{"success": true}\n')  # a passed suite
    project.run_ok("clean", "encode", env=environment())
    return path


def environment() -> dict[str, str]:
    return clean_environment(PYTHONUNBUFFERED="1")


def train(repo: Path) -> subprocess.CompletedProcess:
    return run_module("train", cwd=repo, env=environment(), timeout=300)


def runs(repo: Path) -> list:
    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("resume")
    return sorted(client.search_runs([experiment.experiment_id]), key=lambda r: r.info.start_time)


def history(repo: Path) -> list[dict[str, str]]:
    lines = (repo / "reports/train_history.csv").read_text().splitlines()
    keys = lines[0].split(",")
    return [dict(zip(keys, line.split(","), strict=True)) for line in lines[1:]]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    repo = make_repo(tmp_path_factory.mktemp("uninterrupted"))
    result = train(repo)
    assert result.returncode == 0, result.stderr[-3000:]
    return repo


def test_a_killed_run_resumes_where_it_stopped(tmp_path, uninterrupted):
    repo = make_repo(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.train"],
        cwd=repo,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 180
    while not (repo / CHECKPOINT_STATE).exists() and process.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, f"the run was not interrupted:\n{stderr[-3000:]}"
    assert stderr.strip().splitlines()[-1] == "train: interrupted"
    checkpoint = json.loads((repo / CHECKPOINT_STATE).read_text())
    assert 1 <= checkpoint["epoch"] < EPOCHS
    (killed,) = runs(repo)
    assert killed.info.status == "KILLED"
    assert killed.data.tags["interrupted_by"] == "SIGTERM"
    assert not (repo / "models/model.keras").exists()

    result = train(repo)

    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming after epoch {checkpoint['epoch']}" in result.stderr
    killed, resumed = runs(repo)
    assert resumed.info.status == "FINISHED"
    assert resumed.data.tags["resumed_from_run"] == killed.info.run_id
    assert resumed.data.tags["resumed_from_epoch"] == str(checkpoint["epoch"])
    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    steps = [metric.step for metric in client.get_metric_history(resumed.info.run_id, "loss")]
    assert sorted(steps) == list(range(1, EPOCHS + 1))  # the whole curve, earlier epochs re-logged
    assert not (repo / CHECKPOINT_STATE).parent.exists()  # removed after success
    # Same batches (per-epoch seeded order), same dropout masks (seed state restored), same
    # optimiser state: the resumed run retraces the uninterrupted one, up to float rounding.
    expected, actual = history(uninterrupted), history(repo)
    assert len(actual) == len(expected) == EPOCHS
    for want, got in zip(expected, actual, strict=True):
        assert float(got["val_loss"]) == pytest.approx(float(want["val_loss"]), abs=1e-5)
    import keras  # noqa: PLC0415 - only this check needs it

    model = keras.models.load_model(repo / "models/model.keras")
    assert model.name == "charlstm_sequence"


def test_a_checkpoint_from_other_params_is_ignored(tmp_path):
    repo = make_repo(tmp_path, epochs=1)
    state = repo / CHECKPOINT_STATE
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"fingerprint": "another configuration", "epoch": 3}))

    result = train(repo)

    assert result.returncode == 0, result.stderr[-3000:]
    assert "ignoring models/.checkpoints/train" in result.stderr
    assert len(history(repo)) == 1
    assert "resumed_from_run" not in runs(repo)[0].data.tags


def test_divergence_is_one_clear_line_and_a_failed_run(tmp_path):
    repo = make_repo(tmp_path, learning_rate=1e38, clipnorm=None, epochs=2, steps_per_epoch=5)

    result = train(repo)

    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("train: error: training diverged: ")
    assert "lower train.learning_rate" in last
    assert "Traceback" not in result.stderr
    (run,) = runs(repo)
    assert run.info.status == "FAILED"
    assert not (repo / CHECKPOINT_STATE).exists()  # a non-finite epoch is never checkpointed
