"""The project's layout, as docs/development.md states it, checked against the tree:

- the top of `pipeline/` holds only what you run (the DVC stages and the commands, each with a
  `__main__` guard); everything else lives in a package named for its concern;
- no part (a module inside a package) imports a stage or a command, and the benches import parts;
- no module is over 250 lines;
- tests mirror the tree: `pipeline/<package>/<module>.py` has `tests/<package>/test_<module>.py`,
  a stage or command `pipeline/<name>.py` has `tests/test_<name>.py`;
- a test module never imports another (shared helpers live in `tests/support/`), so each file
  reads as the behaviour it checks and can move or go.
"""

import ast
from pathlib import Path

import pytest

from tests.support.imports import imported_modules
from tests.support.project import ROOT

PIPELINE = ROOT / "pipeline"
TESTS = ROOT / "tests"
MAX_LINES = 250
# Modules with nothing to unit-test on their own: exception classes, package docstrings.
NO_LOGIC = {"__init__.py", "errors.py"}


def runnables() -> list[Path]:
    return sorted(path for path in PIPELINE.glob("*.py") if path.name != "__init__.py")


def parts() -> list[Path]:
    return sorted(path for path in PIPELINE.glob("*/*.py"))


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def suite_modules() -> list[Path]:
    return sorted(path for path in TESTS.rglob("*.py") if "support" not in path.parts)


def imported_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def has_main_guard(path: Path) -> bool:
    return any(
        isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)
        for node in ast.parse(path.read_text(encoding="utf-8")).body
    )


@pytest.mark.parametrize("path", runnables(), ids=lambda path: path.name)
def test_the_top_of_pipeline_holds_only_what_you_run(path: Path) -> None:
    assert has_main_guard(path), (
        f"pipeline/{path.name} has no `if __name__ == '__main__'`: a part belongs in a package"
    )


def test_every_folder_of_pipeline_is_a_package_of_parts() -> None:
    folders = [path for path in PIPELINE.iterdir() if path.is_dir() and path.name != "__pycache__"]
    assert folders, "pipeline/ has no packages"
    for folder in folders:
        assert (folder / "__init__.py").is_file(), f"{folder} is not a package"
        assert not list(folder.glob("*/*.py")), f"{folder}: one level of packages only"


@pytest.mark.parametrize("path", parts(), ids=lambda path: path.relative_to(PIPELINE).as_posix())
def test_no_part_imports_a_stage_or_a_command(path: Path) -> None:
    stages = {module_name(runnable) for runnable in runnables()}
    wrong = sorted(imported_modules(module_name(path)) & stages)
    assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}: move what it needs into a part"


@pytest.mark.parametrize("path", sorted((ROOT / "bench").glob("*.py")), ids=lambda path: path.name)
def test_benches_import_parts_not_stages(path: Path) -> None:
    stages = {module_name(runnable) for runnable in runnables()}
    wrong = sorted(imported_names(path) & stages)
    assert not wrong, f"bench/{path.name} imports {wrong}: benches use the parts"


@pytest.mark.parametrize(
    "path",
    [*runnables(), *parts(), *sorted((ROOT / "bench").glob("*.py"))],
    ids=lambda path: path.relative_to(ROOT).as_posix(),
)
def test_no_module_is_over_250_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)}: {lines} lines (at most {MAX_LINES})"


def test_tests_mirror_the_tree() -> None:
    expected = {f"tests/test_{path.stem}.py" for path in runnables()}
    expected |= {
        f"tests/{path.parent.name}/test_{path.stem}.py"
        for path in parts()
        if path.name not in NO_LOGIC
    }
    missing = sorted(name for name in expected if not (ROOT / name).is_file())
    assert not missing, f"no test file for its module: {missing}"
    unit_files = {
        path.relative_to(ROOT).as_posix()
        for path in TESTS.glob("*/test_*.py")
        if path.parent.name not in {"scenarios", "team", "support"}
    }
    orphans = sorted(unit_files - expected)
    assert not orphans, f"test files whose module is gone: {orphans}"


@pytest.mark.parametrize(
    "path", suite_modules(), ids=lambda path: path.relative_to(TESTS).as_posix()
)
def test_no_test_module_imports_another(path: Path) -> None:
    local = {other.stem for other in suite_modules()}
    wrong = sorted(
        name
        for name in imported_names(path)
        if (name.startswith("tests.") and not name.startswith("tests.support"))
        or name.split(".")[-1] in local
    )
    assert not wrong, f"{path.name} imports {wrong}: move shared helpers into tests/support/"
