"""pipeline/verify.py: the reproduction summary, through `python -m pipeline.verify` in a real git
repository whose commit holds a dvc.lock, params.yaml and reports/metrics.json, and whose working
tree then holds this machine's."""

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from pipeline import verify
from tests.support.project import ROOT, clean_environment, run_module

METRICS = {
    "test": {"bpc": 2.2362, "bpc_windowed": 2.2819},
    "val": {"bpc": 2.3371, "bpc_windowed": 2.3764},
    "ngram_test_bpc": 2.2474,
    "margin_bpc": 0.0112,
}


def lock(model_md5: str, metrics_md5: str) -> str:
    stages = {
        "download": {"outs": [{"path": "data/raw/corpus.txt", "md5": "aaa"}]},
        "train": {"outs": [{"path": "models/model.keras", "md5": model_md5}]},
        "evaluate": {"outs": [{"path": "reports/metrics.json", "md5": metrics_md5}]},
    }
    return yaml.safe_dump({"schema": "2.0", "stages": stages})


def write(repo: Path, model_md5: str, metrics: dict) -> None:
    (repo / "reports").mkdir(exist_ok=True)
    (repo / "reports/metrics.json").write_text(json.dumps(metrics))
    (repo / "dvc.lock").write_text(lock(model_md5, str(hash(json.dumps(metrics)))))


@pytest.fixture
def repo(tmp_path) -> Path:
    env = clean_environment()
    (tmp_path / "params.yaml").write_text("train:\n  units: 192\n")
    write(tmp_path, "m1", METRICS)
    for command in (["init", "-q"], ["add", "."], ["commit", "-qm", "results"]):
        subprocess.run(["git", *command], cwd=tmp_path, env=env, check=True)
    return tmp_path


def report(repo: Path) -> list[str]:
    result = run_module("verify", cwd=repo, env=clean_environment(PYTHONPATH=str(ROOT)))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "reproduction against the commit:"
    assert max(map(len, lines)) <= 120
    return lines


def test_the_same_outputs_are_reported_identical(repo):
    lines = report(repo)
    assert "every output is byte for byte the commit's" in lines[-1]
    assert "differs" not in "\n".join(lines)


def test_another_cpus_model_within_the_tolerance_is_said_so_with_the_deltas(repo):
    moved = json.loads(json.dumps(METRICS))
    moved["test"]["bpc"] += 0.0011
    moved["val"]["bpc"] -= 0.0102  # the largest difference measured between two CPU kinds
    moved["val"]["bpc_windowed"] += 0.0055
    write(repo, "m2", moved)
    text = "\n".join(report(repo))
    assert "identical: data/raw/corpus.txt" in text
    assert "differs: models/model.keras, reports/metrics.json" in text
    assert "model: differs within the cross-machine tolerance (0.02 bits/char)" in text
    assert "test.bpc             2.2362    2.2373  +0.0011" in text
    assert "val.bpc              2.3371    2.3269  -0.0102" in text
    assert "next: keep this machine's results as your baseline" in text


def test_a_model_beyond_the_tolerance_asks_for_an_investigation(repo):
    worse = json.loads(json.dumps(METRICS))
    worse["test"]["bpc"] += 0.05
    write(repo, "m3", worse)
    assert "beyond the cross-machine tolerance (0.02 bits/char): investigate" in "\n".join(
        report(repo)
    )


def test_changed_params_are_expected_to_change_the_outputs(repo):
    (repo / "params.yaml").write_text("train:\n  units: 256\n")
    write(repo, "m4", METRICS)
    lines = report(repo)
    assert lines[-1].endswith("params.yaml differs from the commit: different outputs are expected")


def test_without_a_commit_there_is_nothing_to_compare(tmp_path):
    (tmp_path / "dvc.lock").write_text(lock("m", "x"))
    result = run_module("verify", cwd=tmp_path, env=clean_environment(PYTHONPATH=str(ROOT)))
    assert result.returncode == 0
    assert result.stdout == "reproduction: no committed dvc.lock to compare with\n"


@pytest.mark.parametrize(
    ("rows", "verdict"),
    [
        ([("test.bpc", 2.0, 2.0)], "the same numbers as the commit"),
        ([("test.bpc", 2.0, 2.01)], "differs within"),
        ([("test.bpc", 2.0, 2.0101)], "differs beyond"),
        ([], "no headline metrics to compare"),
    ],
)
def test_the_verdict_at_its_boundaries(rows, verdict):
    assert verdict in verify.model_verdict(rows, 0.01)


def test_outputs_are_sorted_into_verdicts():
    committed = {"a": "1", "b": "2", "gone": "3"}
    current = {"a": "1", "b": "9", "added": "4"}
    assert verify.compare_outputs(committed, current) == {
        "identical": ["a"],
        "differs": ["b"],
        "new": ["added"],
        "missing": ["gone"],
    }
