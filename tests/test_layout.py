"""The test suite's own layout (STYLE.md 12 and 13): unit tests mirror `pipeline/`, and a test
module never imports another, so each reads as the behaviour it checks and can move or go."""

import ast
from pathlib import Path

import pytest

from tests.support.project import ROOT

TESTS = ROOT / "tests"
# Modules with nothing to unit-test: exception classes, and the package's environment defaults
# (which every stage test runs through).
NO_LOGIC = {"__init__", "errors"}


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


def test_every_pipeline_module_has_a_unit_test_file() -> None:
    modules = {path.stem for path in (ROOT / "pipeline").glob("*.py")} - NO_LOGIC
    missing = sorted(name for name in modules if not (TESTS / f"test_{name}.py").is_file())
    assert not missing, f"no tests/test_<module>.py for pipeline/{missing}"
