"""Sweeps: expanding a sweep file, checking it against the params schema, and a real one."""

from __future__ import annotations

import time

import pytest
import yaml
from mlflow import MlflowClient

from pipeline import sweep
from pipeline.core.errors import ConfigError, PipelineError
from tests.support.project import clean_environment, make_repo, run, run_module, tiny_params


def sweep_file(text: str) -> sweep.SweepFile:
    return sweep.SweepFile.model_validate(yaml.safe_load(text))


def test_a_grid_expands_to_every_combination_in_file_order():
    points = sweep.expand(sweep_file("grid: {train.units: [8, 16], train.dropout: [0.0, 0.5]}"))
    assert points == [
        {"train.units": 8, "train.dropout": 0.0},
        {"train.units": 8, "train.dropout": 0.5},
        {"train.units": 16, "train.dropout": 0.0},
        {"train.units": 16, "train.dropout": 0.5},
    ]


def test_points_are_taken_as_listed():
    text = "points: [{train.units: 8}, {train.layers: 2, train.units: 4}]\njobs: 1"
    parsed = sweep_file(text)
    assert sweep.expand(parsed) == [{"train.units": 8}, {"train.layers": 2, "train.units": 4}]
    assert parsed.jobs == 1


@pytest.mark.parametrize(
    "text",
    ["grid: {a: [1]}\npoints: [{a: 1}]", "jobs: 2", "grid: {a: []}", "grid: {a: [1]}\nextra: 1"],
)
def test_a_malformed_sweep_file_is_refused(text):
    with pytest.raises(ValueError):
        sweep_file(text)


def test_overrides_must_name_existing_params_keys():
    params = tiny_params()
    assert sweep.apply_overrides(params, {"train.units": 8})["train"]["units"] == 8
    assert params["train"]["units"] == 16  # the original is left alone
    with pytest.raises(ConfigError, match="sweep key train.unit: not a key"):
        sweep.apply_overrides(params, {"train.unit": 8})
    with pytest.raises(ConfigError, match="sweep key nope.units: no such params section"):
        sweep.apply_overrides(params, {"nope.units": 8})


def test_a_point_outside_the_schema_is_refused_before_anything_is_queued(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "bad.yaml").write_text("grid: {train.dropout: [0.2, 1.5]}")
    text = yaml.safe_dump(tiny_params())
    with pytest.raises(ConfigError, match=r"train\.dropout: Input should be less than 1"):
        sweep.load_sweep("bad", text)
    with pytest.raises(
        PipelineError, match=r"sweeps/nope\.yaml: no such sweep \(sweeps here: bad\)"
    ):
        sweep.load_sweep("nope", text)
    with pytest.raises(PipelineError, match="use letters, digits"):
        sweep.load_sweep("../bad", text)


@pytest.mark.slow
def test_a_two_point_sweep_lands_as_two_tagged_mlflow_runs(tmp_path):
    env = clean_environment()
    repo = make_repo(tmp_path / "repo", env, epochs=1)
    (repo / "sweeps").mkdir()
    (repo / "sweeps" / "tiny2.yaml").write_text("grid:\n  train.units: [8, 12]\njobs: 2\n")
    run(["dvc", "repro", "baseline"], repo, env)  # shared data stages once, not in both workers
    started = time.monotonic()
    result = run_module("sweep", "tiny2", cwd=repo, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Success") == 2, result.stdout
    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id], "tags.sweep = 'tiny2'")
    assert sorted(r.data.params["train.units"] for r in runs) == ["12", "8"]
    assert all(r.data.metrics["validation.bits_per_char"] > 0 for r in runs)
    # Queued experiments land as whole runs: finished, with the test score evaluate logged.
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert all("test.bpc" in r.data.metrics for r in runs)
    ranked = run_module("compare", "--sweep", "tiny2", cwd=repo, env=env)
    assert ranked.returncode == 0, ranked.stderr
    assert "sweep 'tiny2', best validation.bits_per_char first" in ranked.stdout
    assert time.monotonic() - started < 600
