"""The gate between validation and the stages after it: `encode` and `train` refuse to run on a
corpus that the validate stage failed.

`dvc repro` already stops at a failed validate stage, but `dvc repro -s encode`, `dvc repro -s
train` or `python -m pipeline.encode` run a single stage and would skip that stop. So each of
them first reads `reports/validation.json` (written by `python -m pipeline.validate`) and refuses,
naming the failed expectations, when it says the suite failed. No report at all is let through:
validate may simply not have run yet in a hand-made folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.core import files
from pipeline.core.errors import PipelineError
from pipeline.core.paths import VALIDATION_SUMMARY_PATH


def failed_expectations(summary: Any) -> list[str]:
    """Names of the failed expectations in a validation summary; raises on a malformed one."""
    if not isinstance(summary, dict) or not isinstance(summary.get("success"), bool):
        raise ValueError("no boolean `success`")
    names = []
    for item in summary.get("expectations") or []:
        if isinstance(item, dict) and item.get("success") is False:
            target = ".".join(str(part) for part in (item.get("table"), item.get("column")) if part)
            names.append(f"{item.get('notes') or item.get('type')} ({target})")
    if not summary["success"] and not names:
        names.append("unnamed")
    return names if not summary["success"] else []


def require_passed_validation(path: Path = VALIDATION_SUMMARY_PATH) -> None:
    """Raise `PipelineError` naming the failed expectations if `path` says validation failed."""
    if not path.is_file():
        return
    try:
        failed = failed_expectations(files.read_json(path))
    except ValueError as error:  # also JSONDecodeError and UnicodeDecodeError
        raise PipelineError(
            f"{path}: not a validation report ({error}); re-run `dvc repro validate`"
        ) from None
    if failed:
        raise PipelineError(
            f"{path} says the corpus failed {len(failed)} expectation(s): {', '.join(failed)}; "
            "fix the corpus or the `validate` params, then run `dvc repro` (validate first)"
        )
