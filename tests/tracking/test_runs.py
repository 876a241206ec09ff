"""pipeline/tracking/runs.py: run names and tags, the data hash, champion choice, the SQLite lock,
and a real SQLite MLflow store for the run status."""

import math
import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import mlflow
import pytest
from filelock import FileLock
from mlflow import MlflowClient

from pipeline.core import hashing
from pipeline.core.params import load_params
from pipeline.lstm import signals
from pipeline.tracking import registry, store
from pipeline.tracking import runs as tracking
from tests.support.project import ROOT


def test_project_root_of_a_queued_experiment_is_the_repository(tmp_path):
    copy = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpabc123"
    assert store.project_root(copy) == tmp_path / "repo"
    assert store.project_root(tmp_path / "repo") == tmp_path / "repo"


def test_default_run_name_is_the_dvc_experiment_else_commit_and_utc_time():
    later = datetime(2026, 1, 2, 4, 4, 5, tzinfo=timezone(timedelta(hours=1)))
    assert tracking.default_run_name({}, "abcdef1234", later) == "repro-abcdef1-20260102-030405"
    named = {"DVC_EXP_NAME": "lunar-moth"}
    assert tracking.default_run_name(named, "abcdef1234", datetime.now(UTC)) == "lunar-moth"
    assert tracking.default_run_name({"DVC_EXP_NAME": ""}, "abcdef1", later).startswith("repro-")


def test_dvc_tags_only_under_dvc_exp_run():
    assert tracking.dvc_tags({"PATH": "/bin"}) == {}
    environ = {"DVC_EXP_NAME": "lunar-moth", "DVC_EXP_BASELINE_REV": "c" * 40}
    assert tracking.dvc_tags(environ) == {
        "dvc_experiment": "lunar-moth",
        "dvc_baseline_rev": "c" * 40,
    }


def test_hash_folder_changes_with_names_and_bytes(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "ids.npy").write_bytes(b"123")
    first = hashing.hash_folder(tmp_path / "a")
    assert len(first) == 64
    assert hashing.hash_folder(tmp_path / "a") == first
    (tmp_path / "a" / "ids.npy").write_bytes(b"124")
    assert hashing.hash_folder(tmp_path / "a") != first
    (tmp_path / "a" / "ids.npy").rename(tmp_path / "a" / "other.npy")
    (tmp_path / "a" / "other.npy").write_bytes(b"123")
    assert hashing.hash_folder(tmp_path / "a") != first  # same bytes, another name


@pytest.mark.parametrize(
    ("candidate", "champion", "expected"),
    [
        (2.0, None, True),  # no champion yet
        (2.0, 2.5, True),
        (2.5, 2.5, False),  # a tie keeps the champion
        (3.0, 2.5, False),
        (2.0, math.nan, True),  # the champion's run lacks the metric
        (math.nan, 2.5, False),
        (math.inf, None, False),  # a diverged run never becomes champion
    ],
)
def test_beats_champion(candidate, champion, expected):
    assert registry.beats_champion(candidate, champion) is expected


def test_the_store_lock_is_only_for_sqlite_and_waits_twice_its_timeout(tmp_path):
    lock = store.store_creation_lock(f"sqlite:///{tmp_path / 'mlflow.db'}?timeout=7")
    assert isinstance(lock, FileLock)
    assert Path(lock.lock_file) == tmp_path / "mlflow.db.lock"
    assert lock.timeout == 14
    assert store.store_creation_lock(f"sqlite:///{tmp_path / 'm.db'}").timeout == 120
    assert not isinstance(store.store_creation_lock("http://127.0.0.1:5000"), FileLock)


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow")
    (folder / "data/encoded").mkdir(parents=True)
    (folder / "data/encoded/ids.npy").write_bytes(b"ids")
    previous = os.getcwd()
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.chdir(folder)
    # An explicit URI: an earlier test may have left another one set in mlflow's globals.
    yield MlflowClient(tracking_uri=uri)
    os.chdir(previous)
    del os.environ["MLFLOW_TRACKING_URI"]
    mlflow.set_tracking_uri(None)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (None, "FINISHED"),
        (KeyboardInterrupt, "KILLED"),
        (signals.Interrupted(15), "KILLED"),
        (ValueError("boom"), "FAILED"),
    ],
)
def test_a_training_run_always_ends_with_a_true_status(mlflow_store, error, status):
    params = load_params(ROOT / "params.yaml")
    try:
        with tracking.training_run(params, {"device": "test"}) as run:
            if error is not None:
                raise error
    except (KeyboardInterrupt, ValueError):
        pass
    finished = mlflow_store.get_run(run.info.run_id)
    assert finished.info.status == status
    assert finished.data.tags["device"] == "test"
    assert mlflow.active_run() is None
