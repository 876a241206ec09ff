"""Which modules a pipeline module imports, read from the source with `ast` (nothing is run).

Every import statement counts, at module level or inside a function (a stage may import a heavy
module lazily, in `main()`), except those under `if TYPE_CHECKING:`, which never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.project import ROOT

PACKAGE = "pipeline"


def module_file(module: str, root: Path = ROOT) -> Path | None:
    """`pipeline.a.b` -> pipeline/a/b.py or pipeline/a/b/__init__.py; None if it is no module."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return ast.unparse(test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement in `tree`, skipping the bodies of `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            pending.extend(node.orelse)
            continue
        pending.extend(ast.iter_child_nodes(node))
    return found


def imported_modules(module: str, root: Path = ROOT) -> set[str]:
    """The absolute names of the modules `module` imports (`from p import m` gives `p.m` when
    `m` is a module of package `p`, else `p`)."""
    path = module_file(module, root)
    if path is None:
        raise ValueError(f"{module} is not a module under {root}")
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:  # relative: `from . import x`, `from ..a import b`
            parts = package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
        names.add(base)
        for alias in node.names:
            if module_file(f"{base}.{alias.name}", root) is not None:
                names.add(f"{base}.{alias.name}")
    return names


def with_parents(module: str) -> set[str]:
    """`a.b.c` -> {a, a.b, a.b.c}: importing a module runs its packages' `__init__` first."""
    parts = module.split(".")
    return {".".join(parts[:index]) for index in range(1, len(parts) + 1)}


def pipeline_closure(module: str, root: Path = ROOT) -> set[str]:
    """`module` and every `pipeline` module it imports, directly or through others (with the
    packages they live in; for a package run with `-m`, its `__main__` too)."""
    found: set[str] = set()
    pending = [module]
    if module_file(f"{module}.__main__", root) is not None:
        pending.append(f"{module}.__main__")
    while pending:
        name = pending.pop()
        for each in with_parents(name):
            if each in found or module_file(each, root) is None:
                continue
            found.add(each)
            pending.extend(
                imported
                for imported in imported_modules(each, root)
                if imported.split(".")[0] == PACKAGE
            )
    return found


def external_imports(modules: set[str], root: Path = ROOT) -> set[str]:
    """The top-level names of every non-`pipeline` module that `modules` import."""
    return {
        imported.split(".")[0]
        for module in modules
        for imported in imported_modules(module, root)
        if imported.split(".")[0] != PACKAGE
    }


def source_paths(modules: set[str], root: Path = ROOT) -> set[str]:
    """The repository-relative paths of `modules`' files, as dvc.yaml spells them."""
    paths = set()
    for module in modules:
        path = module_file(module, root)
        assert path is not None, module
        paths.add(path.relative_to(root).as_posix())
    return paths
