"""MLflow as people use it: meaningful run names, final metrics on the logged models, and a
`champion` alias that only moves to a better model (against a real SQLite store)."""

import math
from collections.abc import Iterator
from datetime import UTC, datetime

import mlflow
import pytest
from mlflow import MlflowClient

from pipeline import tracking
from pipeline.errors import PipelineError

COMMIT = "0123456789abcdef0123456789abcdef01234567"
NOON = datetime(2026, 11, 25, 12, 30, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Iterator[MlflowClient]:
    """The default store (`mlflow.db` at the repository root, here a temporary folder), created
    once for the module (creating a SQLite store takes seconds); MLflow's process-wide settings
    are reset afterwards."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp("repository"))
        mlflow.set_tracking_uri(tracking.tracking_uri())
        yield MlflowClient()
        mlflow.set_tracking_uri(None)  # back to the default resolution, not a pinned copy of it


@pytest.fixture
def client(store, request) -> Iterator[MlflowClient]:
    """The store with an experiment of this test's own selected."""
    mlflow.set_experiment(request.node.name)
    yield store
    mlflow.set_experiment(experiment_id="0")


def test_a_dvc_experiment_names_the_run_and_tags_it():
    environ = {"DVC_EXP_NAME": "gaunt-yarn", "DVC_EXP_BASELINE_REV": COMMIT}
    assert tracking.default_run_name(environ, COMMIT, NOON) == "gaunt-yarn"
    assert tracking.dvc_tags(environ) == {
        "dvc_experiment": "gaunt-yarn",
        "dvc_baseline_rev": COMMIT,
    }


def test_a_plain_repro_is_named_by_commit_and_utc_time():
    assert tracking.default_run_name({}, COMMIT, NOON) == "repro-0123456-20261125-123005"
    assert tracking.dvc_tags({"DVC_EXP_NAME": ""}) == {}


def test_run_names_differ_even_after_seeding_random(client):
    """Seeding Python's `random` (as training does) fixed MLflow's generated names."""
    names = []
    for second in (1, 2):
        moment = NOON.replace(second=second)
        with mlflow.start_run(run_name=tracking.default_run_name({}, COMMIT, moment)) as run:
            names.append(run.info.run_name)
    assert names[0] != names[1]


@pytest.mark.parametrize(
    ("candidate", "champion", "expected"),
    [
        (2.0, None, True),  # the first model becomes champion
        (2.0, 2.5, True),
        (2.5, 2.0, False),
        (2.0, 2.0, False),  # a tie keeps the champion
        (2.0, math.nan, True),  # a champion from before the metric existed
        (math.nan, None, False),  # a diverged run never becomes champion
    ],
)
def test_beats_champion(candidate, champion, expected):
    assert tracking.beats_champion(candidate, champion) is expected


def register(name: str) -> str:
    """A logged model of the active run, registered under `name`; returns the version."""
    model = mlflow.initialize_logged_model(
        name="model", source_run_id=mlflow.active_run().info.run_id
    )
    return mlflow.register_model(f"models:/{model.model_id}", name).version


def finished_run(names: tuple[str, ...], bits: float) -> tuple[str, dict[str, str], dict[str, str]]:
    """A run that registers a version of each of `names`, logs its final metrics and asks for
    promotion; returns (run id, {name: version}, decision tags)."""
    with mlflow.start_run() as run:
        versions = {name: str(register(name)) for name in names}
        tracking.log_final_metrics({tracking.SELECTION_METRIC: bits, "best_epoch": 3.0})
        tags = tracking.promote_if_better(versions, bits)
    return run.info.run_id, versions, tags


def champion_of(client: MlflowClient, name: str) -> str:
    return str(client.get_model_version_by_alias(name, tracking.CHAMPION).version)


def test_champion_moves_only_to_a_better_model(client):
    names = ("promoted", "promoted-generator")

    first, versions, tags = finished_run(names, 2.5)
    assert tags["champion_decision"] == "promoted"
    assert tags["champion_previous_version"] == "none"
    assert {name: champion_of(client, name) for name in names} == versions
    assert client.get_run(first).data.tags["champion_decision"] == "promoted"

    worse, _, tags = finished_run(names, 3.0)
    assert tags["champion_decision"] == "kept previous champion"
    assert tags["champion_previous_value"] == "2.500000"
    assert {name: champion_of(client, name) for name in names} == versions
    assert client.get_run(worse).data.tags["champion_previous_version"] == versions["promoted"]

    _, better_versions, tags = finished_run(names, 2.25)
    assert tags["champion_decision"] == "promoted"
    assert {name: champion_of(client, name) for name in names} == better_versions


def test_final_metrics_land_on_the_run_and_its_logged_models(client):
    with mlflow.start_run() as run:
        mlflow.log_metrics({"loss": 3.1}, step=1)  # a per-epoch metric stays on the run only
        register("tiny")
        register("tiny-generator")
        tracking.log_final_metrics({"validation.bits_per_char": 2.29})
    assert client.get_run(run.info.run_id).data.metrics["validation.bits_per_char"] == 2.29
    models = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id], output_format="list"
    )
    assert len(models) == 2
    for model in models:
        assert {m.key: m.value for m in model.metrics} == {"validation.bits_per_char": 2.29}


def test_final_metrics_need_an_open_run():
    with pytest.raises(PipelineError, match="active MLflow run"):
        tracking.log_final_metrics({"x": 1.0})


def test_epochs_log_loss_and_val_loss_only_with_the_epoch_as_step(client):
    with mlflow.start_run() as run:
        tracking.log_history({"loss": [3.0, 2.0], "val_loss": [3.5, 2.5], "learning_rate": [1, 1]})
    assert set(client.get_run(run.info.run_id).data.metrics) == {"loss", "val_loss"}
    history = client.get_metric_history(run.info.run_id, "val_loss")
    assert [(m.step, m.value) for m in history] == [(1, 3.5), (2, 2.5)]
