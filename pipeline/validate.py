"""Validate stage: check the clean corpus against the data-quality suite before training.

Reads `data/clean/corpus.txt` and the `validate` block of params.yaml. Writes a self-contained
HTML report to `reports/validation/index.html` (opens offline and in MLflow's artifact viewer; see
`pipeline/quality/report.py`) and a JSON summary to `reports/validation.json`. If an
expectation fails, both reports are still written, each failure is logged, and the stage exits 1,
so `dvc repro` stops before encoding and training.

    python -m pipeline.validate

The corpus becomes three small tables, never one row per character, so a 100 MB corpus stays
cheap: `lines` (one row per line), `characters` (one row per distinct character) and `stats`
(one row of totals). `pipeline/quality/suite.py` defines the expectations on them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from pipeline.core.cli import run_stage
from pipeline.core.config import ValidateParams
from pipeline.core.errors import ValidationFailed
from pipeline.core.files import atomic_directory, write_json, write_text
from pipeline.core.params import load_params
from pipeline.core.paths import CLEAN_CORPUS, VALIDATION_DOCS_DIR, VALIDATION_SUMMARY_PATH
from pipeline.quality.report import render_report

if TYPE_CHECKING:
    from pipeline.quality.suite import Outcome

log = logging.getLogger(__name__)


def read_corpus(path: Path) -> str:
    """The text as stored: `\\r` is kept, and bytes that are not UTF-8 become U+FFFD, so the
    allowed-characters expectation reports them instead of the read crashing."""
    return path.read_bytes().decode("utf-8", errors="replace")


def build_line_table(text: str) -> pd.DataFrame:
    """One row per line: `text` and `length` (newline excluded), indexed by line number from 1."""
    lines = text.removesuffix("\n").split("\n") if text else []
    table = pd.DataFrame({"text": pd.Series(lines, dtype="str")})
    table["length"] = table["text"].str.len().astype("int64")
    # Unnamed: GX then reports unexpected rows by bare index, here the line number.
    table.index = pd.RangeIndex(1, len(lines) + 1)
    return table


def build_character_table(text: str) -> pd.DataFrame:
    """One row per distinct character, most frequent first: `character`, `count`, `is_letter`."""
    counts = Counter(text).most_common()
    return pd.DataFrame(
        {
            "character": pd.Series([char for char, _ in counts], dtype="str"),
            "count": pd.Series([count for _, count in counts], dtype="int64"),
            "is_letter": pd.Series([char.isalpha() for char, _ in counts], dtype="bool"),
        }
    )


def compute_statistics(lines: pd.DataFrame, characters: pd.DataFrame) -> dict[str, int | float]:
    """Corpus totals from the two tables; `letter_share` is letters / all characters."""
    total = int(characters["count"].sum())
    letters = int(characters.loc[characters["is_letter"], "count"].sum())
    return {
        "total_chars": total,
        "line_count": len(lines),
        "longest_line": int(lines["length"].max()) if len(lines) else 0,
        "vocab_size": len(characters),
        "letter_count": letters,
        "letter_share": letters / total if total else 0.0,
    }


def summarise_validation(
    statistics: dict[str, int | float], outcomes: Sequence[Outcome]
) -> dict[str, Any]:
    """The JSON summary: overall success, counts, corpus statistics and every expectation."""
    failed = sum(not outcome.success for outcome in outcomes)
    return {
        "success": failed == 0,
        "evaluated_expectations": len(outcomes),
        "failed_expectations": failed,
        "statistics": statistics,
        "expectations": [asdict(outcome) for outcome in outcomes],
    }


def raise_for_failures(outcomes: Sequence[Outcome]) -> None:
    """Log one line per failed expectation, then raise one `ValidationFailed` naming them all."""
    failures = [outcome for outcome in outcomes if not outcome.success]
    if not failures:
        return
    for outcome in failures:
        log.error("%s", outcome.describe())
    names = ", ".join(outcome.name for outcome in failures)
    raise ValidationFailed(
        f"{len(failures)} of {len(outcomes)} expectations failed: {names}; "
        f"see {VALIDATION_SUMMARY_PATH} and {VALIDATION_DOCS_DIR / 'index.html'}"
    )


def validate_corpus(
    text: str, params: ValidateParams
) -> tuple[dict[str, int | float], list[Outcome]]:
    """Run the suite on `text`: the corpus statistics and one outcome per expectation."""
    # GX takes seconds to import, so only a run of the suite pays for it; it also logs dozens
    # of INFO lines on import and use, and the stage log wants only its warnings.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    from pipeline.quality.suite import build_corpus_suite, run_corpus_suite  # noqa: PLC0415

    lines = build_line_table(text)
    characters = build_character_table(text)
    statistics = compute_statistics(lines, characters)
    tables = {"lines": lines, "characters": characters, "stats": pd.DataFrame([statistics])}
    return statistics, run_corpus_suite(tables, build_corpus_suite(params))


def main() -> None:
    params = load_params().validate_
    text = read_corpus(CLEAN_CORPUS)
    log.info("validating %s (%d characters)", CLEAN_CORPUS, len(text))
    statistics, outcomes = validate_corpus(text, params)
    summary = summarise_validation(statistics, outcomes)
    with atomic_directory(
        VALIDATION_DOCS_DIR
    ) as docs_dir:  # a folder: what DVC and MLflow already expect
        write_text(docs_dir / "index.html", render_report(summary))
    write_json(VALIDATION_SUMMARY_PATH, summary)
    log.info("wrote %s and %s", VALIDATION_DOCS_DIR / "index.html", VALIDATION_SUMMARY_PATH)
    raise_for_failures(outcomes)
    log.info("all %d expectations passed: %s", len(outcomes), statistics)


if __name__ == "__main__":
    run_stage("validate", main)
