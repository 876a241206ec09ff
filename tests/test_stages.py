"""The stage boundaries that dvc.yaml promises, checked against the code instead of kept by hand.

- Each stage's code `deps` are exactly the `pipeline/` modules its command imports (transitively,
  read with `ast`), and its other deps are outputs of other stages.
- Each stage's `outs`, `metrics` and `plots` are paths of the registry `pipeline/core/paths.py`
  that the stage's code names; and the stage, run as dvc.yaml runs it in a temporary project, writes
  exactly those (besides the MLflow store, which is shared by design).
- No data stage imports TensorFlow: they start in well under a second.

Expectations come from dvc.yaml and the code, so a new stage or module needs no edit here.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePath
from typing import Any

import pytest
import yaml

from tests.support.imports import external_imports, module_file, pipeline_closure, source_paths
from tests.support.project import ROOT, clean_environment, copy_project

DATA_STAGES = ("download", "clean", "validate", "encode")
HEAVY = {"tensorflow", "keras"}  # what a data stage must never import
COMMAND = re.compile(r"^python -m (pipeline(?:\.\w+)+)$")
# The MLflow store every training run writes to: shared by all runs, so no stage's DVC output
# (root .gitignore keeps it out of git). Checkpoints are removed when training succeeds.
NOT_OUTPUTS = ("mlflow.db", "mlflow.db.lock", "mlruns/", "mlartifacts/", "models/.checkpoints/")


@dataclass(frozen=True)
class Stage:
    name: str
    module: str  # what `python -m` runs
    code_deps: frozenset[str]
    data_deps: frozenset[str]
    outputs: frozenset[str]  # outs, metrics and plots

    @property
    def modules(self) -> set[str]:
        return pipeline_closure(self.module)


def paths_of(entries: list[Any] | None) -> set[str]:
    """dvc.yaml lists a path as a string, or as a one-key mapping to its options."""
    paths = set()
    for entry in entries or []:
        paths.update([entry] if isinstance(entry, str) else entry)
    return {path.rstrip("/") for path in paths}


@cache
def read_stages() -> dict[str, Stage]:
    stages = {}
    for name, spec in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        match = COMMAND.match(spec["cmd"].strip())
        assert match, f"stage {name}: cmd {spec['cmd']!r} is not `python -m pipeline.<module>`"
        deps = paths_of(spec.get("deps"))
        code = {dep for dep in deps if dep.startswith("pipeline/")}
        outputs = paths_of(spec.get("outs")) | paths_of(spec.get("metrics"))
        outputs |= paths_of(spec.get("plots"))
        stages[name] = Stage(
            name, match[1], frozenset(code), frozenset(deps - code), frozenset(outputs)
        )
    return stages


def producer(path: str) -> str | None:
    """The stage whose output `path` is (or lies inside)."""
    for stage in read_stages().values():
        if any(path == out or path.startswith(f"{out}/") for out in stage.outputs):
            return stage.name
    return None


def upstream(name: str) -> list[str]:
    """`name` and every stage it depends on through data deps, in dvc.yaml order."""
    needed, pending = set(), [name]
    while pending:
        current = pending.pop()
        if current not in needed:
            needed.add(current)
            pending.extend(
                found
                for dep in read_stages()[current].data_deps
                if (found := producer(dep)) is not None
            )
    return [stage for stage in read_stages() if stage in needed]


def is_heavy(name: str) -> bool:
    """Whether running `name` (and what it needs) imports TensorFlow: those runs are slow."""
    return any(external_imports(read_stages()[each].modules) & HEAVY for each in upstream(name))


STAGE_NAMES = list(read_stages())


# --- deps -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", STAGE_NAMES)
def test_code_deps_are_the_modules_the_stage_imports(name: str) -> None:
    stage = read_stages()[name]
    imported = source_paths(stage.modules)
    missing, extra = sorted(imported - stage.code_deps), sorted(stage.code_deps - imported)
    assert not missing and not extra, (
        f"dvc.yaml stage {name}: add {missing} (imported by {stage.module}), "
        f"remove {extra} (not imported)"
    )


@pytest.mark.parametrize("name", STAGE_NAMES)
def test_data_deps_are_outputs_of_other_stages(name: str) -> None:
    stage = read_stages()[name]
    orphans = sorted(dep for dep in stage.data_deps if producer(dep) in (None, name))
    assert not orphans, f"dvc.yaml stage {name}: no other stage outputs {orphans}"


def test_every_stage_is_checked() -> None:
    """The parametrized tests above see every stage, the data stages among them."""
    assert set(DATA_STAGES) <= set(STAGE_NAMES)


# --- outs -----------------------------------------------------------------------------------------


def registry() -> dict[str, str]:
    """Every path constant of `pipeline/core/paths.py`, by name."""
    names = vars(importlib.import_module("pipeline.core.paths"))
    return {name: value.as_posix() for name, value in names.items() if isinstance(value, PurePath)}


def named_paths(modules: set[str]) -> set[str]:
    """The registry paths that `modules` name (imported by name, or as `paths.NAME`)."""
    names = set()
    for module in modules:
        path = module_file(module)
        assert path is not None, module
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pipeline"):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.Attribute) and ast.unparse(node.value) == "paths":
                names.add(node.attr)
    known = registry()
    return {known[name] for name in names if name in known}


@pytest.mark.parametrize("name", STAGE_NAMES)
def test_outputs_are_registry_paths_that_the_stage_names(name: str) -> None:
    stage = read_stages()[name]
    unregistered = sorted(stage.outputs - set(registry().values()))
    assert not unregistered, (
        f"dvc.yaml stage {name}: define {unregistered} in pipeline/core/paths.py"
    )
    unnamed = sorted(stage.outputs - named_paths(stage.modules))
    assert not unnamed, f"dvc.yaml stage {name} declares {unnamed}, which its code never names"


def file_states(root: Path) -> dict[str, tuple[int, int, int]]:
    """(inode, size, mtime) of every file but the code: an atomic write changes the inode."""
    states = {}
    for path in root.rglob("*"):
        relative = path.relative_to(root).as_posix()
        if (
            path.is_file()
            and not relative.startswith("pipeline/")
            and "__pycache__" not in relative
        ):
            status = path.stat()
            states[relative] = (status.st_ino, status.st_size, status.st_mtime_ns)
    return states


class Pipeline:
    """A temporary project where each stage runs once, by its dvc.yaml command, in order; it
    remembers the files each run created, changed or removed."""

    def __init__(self, root: Path) -> None:
        self.root = copy_project(root, extras=("dvc.yaml",))
        self.written: dict[str, set[str]] = {}

    def writes_of(self, name: str) -> set[str]:
        for each in upstream(name):
            if each not in self.written:
                self.written[each] = self._run(each)
        return self.written[name]

    def _run(self, name: str) -> set[str]:
        root = self.root
        before = file_states(root)
        command = yaml.safe_load((root / "dvc.yaml").read_text())["stages"][name]["cmd"]
        result = subprocess.run(
            command,
            shell=True,
            cwd=root,
            env=clean_environment(),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, f"{command} failed:\n{result.stderr[-3000:]}"
        after = file_states(root)
        return {
            path for path in before.keys() | after.keys() if before.get(path) != after.get(path)
        }


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    return Pipeline(tmp_path_factory.mktemp("stages"))


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=[pytest.mark.slow] if is_heavy(name) else [])
        for name in STAGE_NAMES
    ],
)
def test_a_stage_writes_exactly_its_declared_outputs(pipeline: Pipeline, name: str) -> None:
    outputs = read_stages()[name].outputs
    written = pipeline.writes_of(name)
    undeclared = sorted(
        path
        for path in written
        if not path.startswith(NOT_OUTPUTS)
        and not any(path == out or path.startswith(f"{out}/") for out in outputs)
    )
    assert not undeclared, f"stage {name} wrote {undeclared}: declare them in dvc.yaml"
    unwritten = sorted(
        out for out in outputs if not any(p == out or p.startswith(f"{out}/") for p in written)
    )
    assert not unwritten, f"stage {name} declares {unwritten} in dvc.yaml but did not write them"


# --- heavy imports ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DATA_STAGES)
def test_no_data_stage_imports_tensorflow_anywhere_in_its_code(name: str) -> None:
    """Read from the source: also an import inside a function, which the run below might skip."""
    heavy = external_imports(read_stages()[name].modules) & HEAVY
    assert not heavy, f"stage {name} imports {sorted(heavy)} (through {read_stages()[name].module})"


@pytest.mark.parametrize("name", DATA_STAGES)
def test_no_data_stage_imports_tensorflow_when_loaded(name: str) -> None:
    module = read_stages()[name].module
    code = (
        f"import sys, {module}\n"
        f"loaded = {{name.split('.')[0] for name in sys.modules}}\n"
        f"sys.exit(', '.join(sorted(loaded & set({sorted(HEAVY)!r}))) or None)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"importing {module} loads {result.stderr.strip()}"
