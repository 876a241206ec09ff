"""pipeline.compare against a real SQLite MLflow store holding two runs."""

import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from pipeline import compare
from pipeline.core.errors import PipelineError
from tests.support.project import ROOT, clean_environment, run_module, tiny_params
from tests.support.servers import free_port

OLDER, NEWER = 1_700_000_000_000, 1_700_000_600_000  # run start times, ms since the epoch


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """Experiment `tiny`: an older run (16 units) and a newer one (32 units, dirty tree), both of
    sweep `s1`, and a third run outside it."""
    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment("tiny", (folder / "artifacts").as_uri())
    client.create_experiment("other", (folder / "other").as_uri())
    runs = ((OLDER, 16, 3.5, "false", "s1"), (NEWER, 32, 3.875, "true", "s1"))
    runs += ((OLDER - 1, 64, 1.0, "false", ""),)
    for start, units, bits, dirty, sweep in runs:
        tags = {"git_commit": f"{units:02d}" + "c" * 38, "git_dirty": dirty}
        tags |= {"sweep": sweep} if sweep else {}
        name = f"1114-{start // 1000 % 1_000_000:06d}-{units:02d}cccc"  # as train names its runs
        run = client.create_run(experiment_id, start_time=start, tags=tags, run_name=name)
        run_id = run.info.run_id
        metrics = [
            Metric("validation.bits_per_char", bits, start, 0),
            Metric("margin_bpc", bits - 4, start, 0),
        ]
        if units == 32:  # only the newer run sampled at t=0.8: the older one shows `-` there
            metrics.append(Metric("sampling.t0.80.distinct_2", 0.25, start, 0))
        params = [
            Param("train.units", str(units)),
            Param("train.epochs", "2"),
            Param("encode.seq_len", "20"),
        ]
        client.log_batch(run_id, metrics=metrics, params=params)
        client.set_terminated(run_id, end_time=start + 1000)
    return uri


def test_fetch_runs_returns_the_newest_first(store):
    runs = compare.fetch_runs("tiny", 10, store)
    assert list(runs["params.train.units"]) == ["32", "16", "64"]
    assert list(runs["status"]) == ["FINISHED"] * 3


def test_a_sweep_is_ranked_by_validation_bits_per_char(store):
    runs = compare.rank_runs(compare.fetch_runs("tiny", 10, store, sweep="s1"))
    assert list(runs["params.train.units"]) == ["16", "32"]  # 3.5 before 3.875; 64 not in s1


def test_fetch_runs_keeps_only_the_last_n(store):
    runs = compare.fetch_runs("tiny", 1, store)
    assert list(runs["params.train.units"]) == ["32"]


def test_fetch_runs_rejects_an_unknown_experiment(store):
    with pytest.raises(PipelineError, match=r"no MLflow experiment 'nope' .*other, tiny"):
        compare.fetch_runs("nope", 10, store)


def test_fetch_runs_does_not_create_a_missing_store(tmp_path):
    missing = tmp_path / "mlflow.db"
    with pytest.raises(PipelineError, match="no MLflow store at .*run `dvc repro` first"):
        compare.fetch_runs("tiny", 10, f"sqlite:///{missing}")
    assert not missing.exists()


def test_format_runs_shows_params_and_metrics_per_run_by_name(store):
    lines = compare.format_runs(compare.fetch_runs("tiny", 2, store)).splitlines()
    header, newer, older = lines
    header_words = (
        "run started status commit units layers batch val_bpc test_bpc ngram margin minutes"
    )
    # name, start time, status, commit (`+`: uncommitted changes), params, metrics; `-`: not logged.
    newer_words = "1114-000600-32cccc 11-14 22:23 FINISHED 32ccccc+ 32 - - 3.8750 - - -0.1250 -"
    older_words = "1114-000000-16cccc 11-14 22:13 FINISHED 16ccccc 16 - - 3.5000 - - -0.5000 -"
    assert header.split() == header_words.split()
    assert newer.split() == newer_words.split()
    assert older.split() == older_words.split()


def test_the_table_fits_120_columns_and_the_wide_one_shows_everything(store):
    runs = compare.fetch_runs("tiny", 10, store)
    narrow = compare.format_runs(runs).splitlines()
    assert max(map(len, narrow)) <= 120
    wide = compare.format_runs(runs, wide=True).splitlines()
    assert wide[0].split()[:2] == ["run", "run_id"]
    assert "sampling.t0.80.distinct_2" in wide[0] and "train.epochs" in wide[0]
    assert all(
        row.split()[1] in {run.run_id for run in []} or len(row.split()[1]) == 32
        for row in wide[1:]
    )


def test_format_runs_of_no_runs():
    assert compare.format_runs(pd.DataFrame()) == "(no runs yet)"


def cli(args: list[str], cwd: Path, uri: str) -> subprocess.CompletedProcess:
    env = clean_environment(MLFLOW_TRACKING_URI=uri, PYTHONPATH=str(ROOT))
    return run_module("compare", *args, cwd=cwd, env=env, timeout=120)


def test_cli_reads_the_experiment_from_params_yaml(store, tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params()))  # experiment: tiny
    result = cli(["--last", "2"], tmp_path, store)
    assert result.returncode == 0, result.stderr
    title, header, newer, older = result.stdout.splitlines()
    assert title == f"experiment 'tiny' in {store}, newest first:"
    assert "val_bpc" in header and max(map(len, result.stdout.splitlines())) <= 120
    assert "32ccccc+" in newer and "3.8750" in newer
    assert "16ccccc " in older and "3.5000" in older


def test_cli_ranks_one_sweep(store, tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    result = cli(["--sweep", "s1"], tmp_path, store)
    assert result.returncode == 0, result.stderr
    title, _, best, worse = result.stdout.splitlines()
    assert title.endswith("sweep 's1', best validation.bits_per_char first:")
    assert best.startswith("1114-000000-16cccc") and worse.startswith("1114-000600-32cccc")


def test_cli_names_an_unknown_experiment_in_one_line(store, tmp_path):
    result = cli(["--experiment", "nope"], tmp_path, store)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1].startswith("compare: error: no MLflow experiment 'nope'")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("http://alice:s3cr3tPW@127.0.0.1:{port}/?token=t0ken", "cannot be read"),
        ("htp:/x", "cannot be read (Model registry functionality is unavailable"),
        ("postgresql://alice:s3cr3tPW@127.0.0.1:{port}/db", "needs the Python module"),
    ],
    ids=["unreachable", "malformed", "no-driver"],
)
def test_a_store_that_cannot_be_read_is_one_line_without_secrets(tmp_path, uri, reason):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    result = cli([], tmp_path, uri.format(port=free_port()))  # nothing listens there
    assert result.returncode == 1 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("compare: error: MLflow tracking store ")
    assert reason in result.stderr
    assert "s3cr3tPW" not in result.stderr and "t0ken" not in result.stderr
    assert "MLFLOW_TRACKING_URI" in result.stderr
