"""`dvc exp run -S` rewrites params.yaml: the committed file is kept in the shape DVC writes, so
an experiment's diff holds exactly the lines it overrides (no dropped comment, no `null` turned
into an empty value, no list reformatted), and the params reader still takes the result.

A real `dvc exp run` in a temporary git + DVC repository holding the committed params.yaml and a
one-line stage that reads the overridden params (the pipeline itself is not needed to rewrite
the file).
"""

from __future__ import annotations

import difflib
from pathlib import Path

import yaml

from pipeline.core.params import load_params
from tests.support.project import ROOT, clean_environment, init_repo, run

STAGE = """\
stages:
  read-params:
    cmd: python -c "print('ran')" > out.txt
    params:
      - train.units
      - evaluate.temperatures
      - download.retries
    outs:
      - out.txt
"""


def changed_lines(before: str, after: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def experiment_repo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A git + DVC repository holding the committed params.yaml and a one-stage dvc.yaml."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "params.yaml").write_bytes((ROOT / "params.yaml").read_bytes())
    (repo / "dvc.yaml").write_text(STAGE, encoding="utf-8")
    env = clean_environment()
    init_repo(repo, env)
    return repo, env


def test_an_experiment_changes_only_the_lines_it_overrides(tmp_path: Path) -> None:
    repo, env = experiment_repo(tmp_path)
    committed = (ROOT / "params.yaml").read_text(encoding="utf-8")
    overrides = ["train.units=256", "evaluate.temperatures=[0.5,0.9]", "download.retries=3"]
    run(["dvc", "exp", "run", *(f"-S{override}" for override in overrides)], repo, env)
    rewritten = (repo / "params.yaml").read_text(encoding="utf-8")
    changed = changed_lines(committed, rewritten)
    assert sorted(changed) == sorted(
        ["-  units: 192", "+  units: 256", "-  retries: 2", "+  retries: 3"]
        + ["-  - 0.8", "-  - 1.0", "+  - 0.9"]
    ), "\n".join(changed)
    # Every other value as committed, and the reader and schema take the rewritten file.
    values = yaml.safe_load(rewritten)
    expected = yaml.safe_load(committed)
    expected["train"]["units"], expected["download"]["retries"] = 256, 3
    expected["evaluate"]["temperatures"] = [0.5, 0.9]
    assert values == expected
    params = load_params(repo / "params.yaml")
    assert (params.train.units, params.download.sources[1].sha256) == (256, None)


def test_the_committed_params_file_is_already_in_dvcs_shape(tmp_path: Path) -> None:
    """A no-op override (the committed value) leaves the file byte for byte as it was."""
    repo, env = experiment_repo(tmp_path)
    committed = (ROOT / "params.yaml").read_text(encoding="utf-8")
    units = yaml.safe_load(committed)["train"]["units"]
    run(["dvc", "exp", "run", f"-Strain.units={units}"], repo, env)
    assert (repo / "params.yaml").read_text(encoding="utf-8") == committed
