"""How a data stage must refuse bad input: exit 1, one `<stage>: error: ...` line on stderr, no
traceback, and every output, its own previous ones included, byte for byte as it was."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from tests.support.project import Project

STAGES = ("download", "clean", "validate", "encode")
OUTPUTS = {
    "download": ("data/raw/corpus.txt", "data/raw/extra.txt", "data/raw/source.json"),
    "clean": ("data/clean/corpus.txt", "data/clean/extra.txt", "reports/clean.json"),
    "validate": ("reports/validation.json", "reports/validation/index.html"),
    "encode": tuple(
        f"data/encoded/{name}"
        for name in ("train_ids.npy", "val_ids.npy", "vocab.json", "windows.json")
    ),
}
# A failed validation writes its reports on purpose (they say what failed); nothing else may change.
REPORTS_OF_A_FAILURE = {"validate": ("reports/validation.json", "reports/validation/")}
SENTINEL = b"sentinel: the output of an earlier, good run\n"


def plant_sentinels(project: Project, stage: str) -> None:
    """Stand-ins for the outputs of an earlier, good run of `stage`."""
    for name in OUTPUTS[stage]:
        path = project.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(SENTINEL)


def error_line(result: subprocess.CompletedProcess[str], stage: str) -> str:
    """The single `<stage>: error: ...` line of a failed run (TensorFlow's notices aside)."""
    assert result.returncode == 1, f"exit {result.returncode}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith(f"{stage}: error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def check_refusal(
    project: Project,
    stage: str,
    *fragments: str,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> str:
    """Run `stage` over planted sentinel outputs; it must refuse in one line and change nothing.

    Returns the error line, which contains every one of `fragments`.
    """
    plant_sentinels(project, stage)
    before = project.snapshot()
    line = error_line(project.run(stage, env, preexec_fn), stage)
    for fragment in fragments:
        assert fragment in line, line
    after = project.snapshot()
    reports = REPORTS_OF_A_FAILURE.get(stage, ())
    changed = {
        name
        for name in before.keys() | after.keys()
        if before.get(name) != after.get(name) and not name.startswith(reports)
    }
    assert not changed, f"{stage} changed {sorted(changed)} although it failed: {line}"
    return line
