"""scripts/retrain.sh and scripts/metrics_report.sh on a real two-commit history.

In a temporary git repository: `dvc repro` on the tiny corpus, commit (the base); retrain with
`scripts/retrain.sh train.epochs=3` (a `dvc exp run -S`), commit; then the Markdown report of
that commit against the base must show the param that moved and the metrics that followed.
"""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.project import ROOT, clean_environment, copy_project, init_repo, run, tiny_params

pytestmark = pytest.mark.slow


def table_rows(report: str, section: str) -> list[list[str]]:
    """The body rows of the Markdown table under `### {section}`, as lists of cell texts."""
    body = report.split(f"### {section}\n", 1)[1].split("\n### ", 1)[0]
    rows = [line.strip("|").split("|") for line in body.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row] for row in rows[2:]]  # skip header and |---| line


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> tuple[Path, dict[str, str], str]:
    """(repository, environment, base commit): the base, then HEAD with train.epochs 2 -> 3."""
    params = tiny_params()
    assert params["train"]["epochs"] == 2
    folder = tmp_path_factory.mktemp("retrain")
    env = clean_environment()
    repo = init_repo(
        copy_project(folder, params, extras=("dvc.yaml", ".gitignore", "scripts")), env
    )
    run(["dvc", "repro"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-q", "-m", "base: 2 epochs"], repo, env)
    base = run(["git", "rev-parse", "HEAD"], repo, env).stdout.strip()
    run(["scripts/retrain.sh", "train.epochs=3"], repo, env)
    run(["git", "commit", "-q", "-a", "-m", "train 3 epochs"], repo, env)
    return repo, env, base


def test_retrain_with_an_override_changed_params_yaml(history):
    repo, _, _ = history
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["train"]["epochs"] == 3
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert lock["stages"]["train"]["params"]["params.yaml"]["train"]["epochs"] == 3


def test_report_shows_the_changed_param_and_the_metrics(history):
    repo, env, base = history
    report = run(["scripts/metrics_report.sh", base], repo, env).stdout
    short = base[:12]
    assert report.startswith(f"## Retraining report: workspace vs `{short}`\n")
    assert ["params.yaml", "train.epochs", "2", "3"] in table_rows(report, "Params")
    metrics = {row[1]: row for row in table_rows(report, "Metrics")}
    path, _, before, after, change = metrics["test.bpc"]
    assert path == "reports/metrics.json"
    assert float(before) > 0 and float(after) > 0
    assert float(change) == pytest.approx(float(after) - float(before), abs=2e-5)
    assert "reports/compare/plots/index.html" in report
    assert (repo / "reports/compare/plots/index.html").is_file()
    assert (repo / "reports/compare/report.md").read_text() == report


def test_report_against_head_says_nothing_changed(history):
    repo, env, _ = history
    report = run(["scripts/metrics_report.sh", "HEAD"], repo, env).stdout
    assert "_No params changed._" in report
    assert "_No metrics changed._" in report


def test_retrain_without_overrides_is_dvc_repro(history):
    repo, env, _ = history
    result = run(["scripts/retrain.sh"], repo, env)
    assert "Data and pipelines are up to date." in result.stdout


def test_dvc_pull_skips_without_a_remote_and_uses_one_given(history, tmp_path):
    repo, env, _ = history
    skipped = run(["scripts/dvc_pull.sh"], repo, env)
    assert "no DVC remote configured" in skipped.stderr
    pulled = run(["scripts/dvc_pull.sh"], repo, {**env, "DVC_REMOTE_URL": str(tmp_path)})
    assert "Everything is up to date." in pulled.stdout
    assert str(tmp_path) in (repo / ".dvc/config.local").read_text()
    assert "remote" not in (repo / ".dvc/config").read_text()  # the URL stays out of git
    (repo / ".dvc/config.local").unlink()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["scripts/retrain.sh", "train.units"], "override 'train.units' is not KEY=VALUE"),
        (["scripts/metrics_report.sh"], "usage: "),
        (["scripts/metrics_report.sh", "no-such-rev"], "'no-such-rev' is not a commit here"),
    ],
)
def test_scripts_reject_bad_arguments(tmp_path, args, message):
    env = clean_environment()
    shutil.copytree(ROOT / "scripts", tmp_path / "scripts")
    run(["git", "init", "-q"], tmp_path, env)
    result = subprocess.run(
        args, cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert message in result.stderr
