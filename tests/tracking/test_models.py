"""pipeline/tracking/models.py against a real SQLite MLflow store: both models logged under their
registered names and registered once per distinct model file; an identical re-run is not
registered again and says which version it repeats."""

from collections.abc import Iterator
from pathlib import Path

import keras
import mlflow
import pytest
from mlflow import MlflowClient

from pipeline.core.config import MlflowParams
from pipeline.core.hashing import hash_file
from pipeline.core.params import parse_params
from pipeline.lstm.builders import ModelShape, build_sequence_model
from pipeline.lstm.model import save_model
from pipeline.tracking import models, registry
from tests.support.generator import VOCABULARY, write_vocabulary
from tests.support.params import committed, committed_raw


def tiny_model(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return build_sequence_model(len(VOCABULARY), ModelShape(embedding_dim=4, units=8, layers=1))


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Iterator[tuple[Path, MlflowClient]]:
    folder = tmp_path_factory.mktemp("models")
    write_vocabulary(folder / "vocab.json")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("tiny")
    try:
        yield folder, MlflowClient(uri)
    finally:
        mlflow.set_tracking_uri(None)


PARAMS = parse_params(
    committed_raw() | {"mlflow": committed(MlflowParams, registered_model="tiny").model_dump()}
)


def log_run(folder: Path, seed: int) -> tuple[str, dict[str, str]]:
    model = tiny_model(seed)
    path = folder / f"model-{seed}.keras"
    save_model(model, path)  # as train saves it: the same weights give the same bytes
    with mlflow.start_run() as run:
        versions = models.log_models(PARAMS, model, path, folder / "vocab.json")
    return run.info.run_id, versions


def versions_of(client: MlflowClient, name: str) -> list[str]:
    return sorted(
        (str(v.version) for v in client.search_model_versions(f"name = '{name}'")), key=int
    )


def test_a_new_model_is_registered_under_both_names_and_tagged_with_its_bytes(store):
    folder, client = store
    before = len(versions_of(client, "tiny"))
    run_id, versions = log_run(folder, seed=1)
    number = str(before + 1)
    assert versions == {"tiny": number, "tiny-generator": number}
    digest = hash_file(folder / "model-1.keras")
    for name, version in versions.items():
        assert client.get_model_version(name, version).tags[registry.MODEL_TAG] == digest
    assert registry.registered_version("tiny", digest) == number
    assert registry.registered_version("tiny", "0" * 64) is None
    logged = mlflow.search_logged_models(
        filter_string=f"source_run_id = '{run_id}'", output_format="list"
    )
    assert sorted(model.name for model in logged) == ["tiny", "tiny-generator"]


def test_an_identical_rerun_is_not_registered_again_and_another_model_is(store):
    folder, client = store
    _, first = log_run(folder, seed=2)
    assert first
    run_id, again = log_run(folder, seed=2)  # the same seed: the same bytes
    assert again == {}
    tags = client.get_run(run_id).data.tags
    assert tags["duplicate_of_version"] == first["tiny"]
    assert (
        tags["champion_decision"] == f"identical to version {first['tiny']}: not registered again"
    )
    assert versions_of(client, "tiny")[-1] == first["tiny"]
    _, other = log_run(folder, seed=3)
    assert other == {
        "tiny": str(int(first["tiny"]) + 1),
        "tiny-generator": str(int(first["tiny"]) + 1),
    }


def test_the_signature_takes_any_batch_and_length():
    signature = models.model_signature(tiny_model(0)).to_dict()
    assert '"shape": [-1, -1]' in signature["inputs"]
    assert '"shape": [-1, -1, 10]' in signature["outputs"]
