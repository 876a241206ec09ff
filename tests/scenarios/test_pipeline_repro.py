"""End to end: the real `dvc repro` in a temporary git repository, on a tiny corpus."""

import csv
import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.support.project import clean_environment, copy_project, init_repo, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    env = clean_environment()
    repo = init_repo(copy_project(tmp_path_factory.mktemp("repo")), env)
    run(["dvc", "repro"], repo, env)
    return repo, env


def test_every_output_exists(repo):
    path, _ = repo
    for output in (
        "data/raw/corpus.txt",
        "data/raw/source.json",
        "data/clean/corpus.txt",
        "reports/clean.json",
        "reports/validation.json",
        "reports/validation/index.html",
        "data/encoded/vocab.json",
        "data/encoded/train_ids.npy",
        "data/encoded/val_ids.npy",
        "data/encoded/test_ids.npy",
        "data/encoded/windows.json",
        "reports/baseline.json",
        "models/model.keras",
        "reports/train_history.csv",
        "reports/metrics.json",
        "reports/samples.md",
        "reports/sampling.csv",
        "dvc.lock",
    ):
        assert (path / output).is_file(), output
    assert json.loads((path / "data/raw/source.json").read_text())["name"] == "local"


def test_metrics_have_every_key(repo):
    path, _ = repo
    metrics = json.loads((path / "reports/metrics.json").read_text())
    assert set(metrics) == {"test", "val", "ngram_test_bpc", "margin_bpc"}
    for split in ("test", "val"):
        assert set(metrics[split]) == {"bpc", "bpc_windowed"}
        assert all(value > 0 for value in metrics[split].values())
    baseline = json.loads((path / "reports/baseline.json").read_text())
    assert metrics["ngram_test_bpc"] == baseline["test"]["bits_per_char_continuous"]
    margin = metrics["ngram_test_bpc"] - metrics["test"]["bpc"]
    assert metrics["margin_bpc"] == pytest.approx(margin)
    with (path / "reports/sampling.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert [row["temperature"] for row in rows] == ["0.0", "1.0"]  # greedy, then t1.00
    assert {"distinct_2", "known_word_share", "longest_copied"} <= set(rows[0])
    samples = (path / "reports/samples.md").read_text()
    assert samples.count("### Sample") == 4  # 2 prompts x (greedy + t1.00)


def test_one_mlflow_run_holds_params_metrics_model_and_reports(repo):
    path, _ = repo
    client = MlflowClient(tracking_uri=f"sqlite:///{path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["train.units"] == "16"
    assert run.data.params["encode.seq_len"] == "20"
    assert "test.bpc" in run.data.metrics and "val.bpc_windowed" in run.data.metrics
    assert "ngram.test.bits_per_char_continuous" in run.data.metrics
    assert "margin_bpc" in run.data.metrics
    assert "sampling.t1.00.distinct_2" in run.data.metrics
    assert len(run.data.tags["model_sha256"]) == 64  # how evaluate found this run
    assert "val_loss" in run.data.metrics
    assert len(client.get_metric_history(run.info.run_id, "loss")) == 2  # one per epoch
    assert len(run.data.tags["git_commit"]) == 40
    assert run.data.tags["git_dirty"] in {"true", "false"}
    assert len(run.data.tags["data_hash"]) == 64
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"evaluation", "plots", "validation"} <= artifacts
    evaluation = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert "evaluation/samples.md" in evaluation
    versions = client.search_model_versions("name='tiny-model'")
    assert [int(v.version) for v in versions] == [1]
    assert versions[0].run_id == run.info.run_id


def test_second_repro_does_nothing(repo):
    path, env = repo
    result = run(["dvc", "repro"], path, env)
    assert "Data and pipelines are up to date." in result.stdout
    status = run(["dvc", "status"], path, env)
    assert "up to date" in status.stdout
