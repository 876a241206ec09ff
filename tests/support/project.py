"""A temporary project to run the pipeline in: tiny params, a copy of the code, a clean
environment, and optionally a git + DVC repository around it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.corpora import CORPUS, LINES

__all__ = ["LINES"]  # re-exported: the tiny corpus's lines, for tests that build their own

ROOT = Path(__file__).resolve().parents[2]
SOURCE_NAME = "corpus_source.txt"  # the tiny params' one download source, a local file
STAGE_TIMEOUT_S = 120
COMMAND_TIMEOUT_S = 600


def tiny_params(**overrides: dict[str, Any]) -> dict[str, Any]:
    """The repository's params.yaml, shrunk so the whole pipeline runs in seconds on `CORPUS`.

    Each keyword names a section and updates its keys, e.g. `tiny_params(train={"epochs": 1})`.
    """
    with (ROOT / "params.yaml").open(encoding="utf-8") as stream:
        params: dict[str, Any] = yaml.safe_load(stream)
    params["download"]["sources"] = [
        {"name": "local", "kind": "file", "sha256": None, "path": SOURCE_NAME}
    ]
    params["validate"].update(min_chars=2000, min_vocab=10)
    params["encode"].update(seq_len=20, stride=10, val_fraction=0.2)
    params["train"].update(embedding_dim=8, units=16, layers=1, epochs=2, batch_size=16, patience=1)
    params["evaluate"].update(temperatures=[1.0], num_samples=2, sample_length=30, prompt_length=8)
    params["mlflow"].update(experiment="tiny", registered_model="tiny-model")
    for section, values in overrides.items():
        params[section].update(values)
    return params


def clean_environment(**extra: str) -> dict[str, str]:
    """This interpreter's environment without settings that would change the pipeline's behaviour.

    Drops MLflow, DVC, charlstm and pip-index settings and any TF_CONFIG (a developer's shell may
    hold them); sets what the Makefile exports for every command (quiet TensorFlow, no GX
    telemetry) and a git identity, which a user has configured. PATH stays as it is: `make test`
    puts the venv's `bin` first, as an activated venv does, so `dvc` and the `python` of dvc.yaml's
    commands are this venv's. (Tests that put it there themselves hid a README whose commands
    found no venv; tests/test_readme.py runs those without one.)
    """
    dropped = ("MLFLOW_", "DVC_", "CHARLSTM_", "PIP_INDEX_URL", "TF_CONFIG")
    env = {key: value for key, value in os.environ.items() if not key.startswith(dropped)}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", GX_ANALYTICS_ENABLED="false")
    for role in ("AUTHOR", "COMMITTER"):
        env[f"GIT_{role}_NAME"], env[f"GIT_{role}_EMAIL"] = "test", "test@localhost"
    env.update(extra)
    return env


def attempt(
    command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 0
) -> subprocess.CompletedProcess[str]:
    """Run `command` in `cwd` and return what it did, whatever its exit status."""
    try:
        return subprocess.run(
            command,
            cwd=cwd,
            env=env or clean_environment(),
            capture_output=True,
            text=True,
            timeout=timeout or COMMAND_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError:
        pytest.fail(
            f"`{command[0]}` is not on PATH: run the tests as a user does, with `make test` or "
            "with the venv active (`source .venv/bin/activate`)",
            pytrace=False,
        )


def run_module(
    module: str,
    *arguments: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 0,
) -> subprocess.CompletedProcess[str]:
    """`python -m pipeline.<module> ARGUMENTS` in `cwd`, as a user runs a stage or a command, with
    this interpreter; returns what it did, whatever its exit status."""
    return attempt([sys.executable, "-m", f"pipeline.{module}", *arguments], cwd, env, timeout)


def run(
    command: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `command` in `cwd`; fail the test with its output unless it exits 0."""
    result = attempt(command, cwd, env)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


def wait_for_queue(repo: Path, env: dict[str, str], timeout_s: float, dvc: str = "dvc") -> str:
    """Poll `dvc queue status` until nothing is queued or running; return its last output."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = run([dvc, "queue", "status"], repo, env).stdout
        if ("Queued" not in status and "Running" not in status) or time.monotonic() > deadline:
            return status
        time.sleep(3)


def copy_project(
    folder: Path,
    params: dict[str, Any] | None = None,
    corpus: bytes = CORPUS,
    extras: Iterable[str] = ("dvc.yaml", ".gitignore"),
) -> Path:
    """`folder` holding a copy of `pipeline/` and `extras` (files or folders of the repository),
    `params.yaml` (`tiny_params()` unless given) and the source corpus."""
    folder.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__")
    for name in ("pipeline", *extras):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, folder / name, ignore=ignore)
        else:
            shutil.copy(ROOT / name, folder / name)
    params = tiny_params() if params is None else params
    (folder / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    (folder / SOURCE_NAME).write_bytes(corpus)
    return folder


def init_repo(folder: Path, env: dict[str, str] | None = None) -> Path:
    """Make `folder` a git + DVC repository (analytics off) with everything in it committed."""
    for command in (
        ["git", "init", "-q"],
        ["dvc", "init", "-q"],
        ["dvc", "config", "core.analytics", "false"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", "tiny pipeline"],
    ):
        run(command, folder, env)
    return folder


def make_repo(folder: Path, env: dict[str, str] | None = None, **train: Any) -> Path:
    """A committed git + DVC repository with the pipeline, tiny params (`train` keys changed) and
    the tiny corpus."""
    return init_repo(copy_project(folder, tiny_params(train=train)), env)


@dataclass
class Project:
    """A temporary folder holding a copy of `pipeline/`, a params file and a source corpus, where
    each stage runs as a user runs it: `python -m pipeline.<stage>`."""

    root: Path
    params: dict[str, Any] = field(default_factory=tiny_params)

    @classmethod
    def create(
        cls, root: Path, corpus: bytes = CORPUS, params: dict[str, Any] | None = None
    ) -> Project:
        project = cls(root, tiny_params() if params is None else params)
        copy_project(root, project.params, corpus, extras=())
        return project

    def write_params(self) -> None:
        (self.root / "params.yaml").write_text(yaml.safe_dump(self.params), encoding="utf-8")

    def update(self, section: str, **values: Any) -> None:
        self.params[section].update(values)
        self.write_params()

    def write_source(self, data: bytes) -> None:
        (self.root / SOURCE_NAME).write_bytes(data)

    def run(
        self,
        stage: str,
        env: dict[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", f"pipeline.{stage}"],
            cwd=self.root,
            env=env or clean_environment(),
            preexec_fn=preexec_fn,
            capture_output=True,
            text=True,
            timeout=STAGE_TIMEOUT_S,
            check=False,
        )

    def run_ok(self, *stages: str, env: dict[str, str] | None = None) -> None:
        for stage in stages:
            result = self.run(stage, env)
            assert result.returncode == 0, f"{stage} failed:\n{result.stderr}"

    def snapshot(self) -> dict[str, bytes]:
        """Every file the stages could touch (all but the code), by relative path."""
        return {
            path.relative_to(self.root).as_posix(): path.read_bytes()
            for path in sorted(self.root.rglob("*"))
            if path.is_file() and "pipeline" not in path.relative_to(self.root).parts[:1]
        }
