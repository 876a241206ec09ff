"""The corpus data-quality suite (Great Expectations GX Core 1.x) and the code that runs it.

The validate stage (`pipeline/validate.py`) turns the clean corpus into three small tables:
`lines` (one row per line: `text`, `length`; index = line number), `characters` (one row per
distinct character: `character`, `count`, `is_letter`) and `stats` (one row of totals, including
`letter_share`). `build_corpus_suite` says which expectations run on which table, with thresholds
from the `validate` block of params.yaml. `run_corpus_suite` validates the tables in an in-memory
GX context and reduces each result to an `Outcome`. (The HTML report is the project's own,
`pipeline/quality/report.py`: GX's Data Docs fetch their assets from the network and embed
corpus lines as raw HTML.)

Importing this module imports GX (seconds), so the validate stage imports it only when it runs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd
from great_expectations.core import ExpectationValidationResult
from great_expectations.data_context.types.base import ProgressBarsConfig

from pipeline.core.config import ValidateParams

# This GX module pins its logger at INFO on import; make it follow the "great_expectations" level.
logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.NOTSET)

# Both patterns run line by line, and avoid `\s` so that pandas can hand them to pyarrow's RE2
# engine (it falls back to Python's `re`, several times slower, for `\s`).
# HTML left in the text: tags such as <p>, </div> or <a href=...>, a doctype or comment, and
# character entities such as &nbsp; &#160; &#xa0;. Shakespeare's "&c." has no ";", so it passes.
MARKUP_PATTERN = (
    r"(?i)</?[a-z][a-z0-9]*(?:[ \t][^<>]*)?/?>|<!doctype|<!--"
    r"|&(?:[a-z][a-z0-9]{1,31}|#[0-9]{1,7}|#x[0-9a-f]{1,6});"
)
# Project Gutenberg header, footer or licence text that the clean stage failed to strip.
LICENCE_PATTERN = r"(?i)project[ \t]+gutenberg|\*\*\*[ \t]*(?:start|end)[ \t]+of|gutenberg\.org"

ALLOWED_CHARACTERS = "allowed characters"  # the notes of the `validate.allowed_chars` check
ROW_LABELS = {"lines": "line"}  # tables whose row index means something to a reader
MAX_EXAMPLES = 5
MAX_EXAMPLE_CHARS = 60


@dataclass(frozen=True)
class Outcome:
    """One expectation's result, reduced to what the reports and the error message need."""

    type: str
    table: str
    column: str | None
    kwargs: dict[str, Any]
    success: bool
    observed_value: Any = None  # aggregate expectations: the measured value
    unexpected_count: int | None = None  # row-by-row expectations: rows that broke it
    unexpected_examples: tuple[str, ...] = ()
    error: str | None = None  # the check itself raised, e.g. on a missing column
    notes: str | None = None  # what the check is for, in words

    @property
    def target(self) -> str:
        return f"{self.table}.{self.column}" if self.column else self.table

    @property
    def name(self) -> str:
        if self.notes == ALLOWED_CHARACTERS and not self.success and self.unexpected_count:
            # The fix is a setting or the text: say which setting, and what it lacks.
            found = ", ".join(self.unexpected_examples)
            return (
                f"{self.notes} ({self.target}: {self.unexpected_count} not in "
                f"validate.allowed_chars, e.g. {found}; add them there or clean them out)"
            )
        return f"{self.notes} ({self.target})" if self.notes else f"{self.type} on {self.target}"

    def describe(self) -> str:
        """One line: which expectation, on what, with which settings, and what was observed."""
        settings = ", ".join(f"{key} {value!r}" for key, value in self.kwargs.items())
        if self.error:
            observed = f"raised {self.error}"
        elif self.unexpected_count is not None:
            observed = f"{self.unexpected_count} unexpected"
            if self.unexpected_examples:
                observed += ", e.g. " + ", ".join(self.unexpected_examples)
        else:
            observed = f"observed {self.observed_value!r}"
        return f"{self.type} on {self.target} ({settings}) failed: {observed}"


def build_corpus_suite(params: ValidateParams) -> dict[str, list[gxe.Expectation]]:
    """The expectations for each table, in report order; `notes` names each check for a reader."""
    lines: list[gxe.Expectation] = [
        gxe.ExpectColumnValuesToNotMatchRegex(
            column="text", regex=MARKUP_PATTERN, notes="no HTML markup"
        ),
        gxe.ExpectColumnValuesToNotMatchRegex(
            column="text", regex=LICENCE_PATTERN, notes="no Gutenberg licence text"
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="length", min_value=0, max_value=params.max_line_length, notes="line length"
        ),
    ]
    characters: list[gxe.Expectation] = [
        gxe.ExpectColumnSumToBeBetween(
            column="count",
            min_value=params.min_chars,
            max_value=params.max_chars,
            notes="corpus size",
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="character",
            value_set=sorted(set(params.allowed_chars)),
            notes=ALLOWED_CHARACTERS,
        ),
        gxe.ExpectTableRowCountToBeBetween(
            min_value=params.min_vocab,
            max_value=params.max_vocab,
            notes="vocabulary size",
        ),
    ]
    stats: list[gxe.Expectation] = [
        gxe.ExpectColumnMinToBeBetween(
            column="letter_share",
            min_value=params.min_letter_share,
            max_value=1.0,
            notes="letter share",
        ),
    ]
    return {"lines": lines, "characters": characters, "stats": stats}


def run_corpus_suite(
    tables: Mapping[str, pd.DataFrame], suite: Mapping[str, Sequence[gxe.Expectation]]
) -> list[Outcome]:
    """Validate each table against its expectations; one `Outcome` each, in suite order."""
    missing = sorted(set(suite) - set(tables))
    if missing:
        raise ValueError(f"the suite names tables that were not built: {', '.join(missing)}")
    context = gx.get_context(mode="ephemeral")
    # tqdm bars from every metric computation would drown the stage's log.
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("corpus")
    outcomes: list[Outcome] = []
    for table, expectations in suite.items():
        batch = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe(table)
        # Copies: adding an expectation to a suite gives it an id; the caller's stay unchanged.
        copies = [expectation.copy(update={"id": None}, deep=True) for expectation in expectations]
        table_suite = context.suites.add(
            gx.ExpectationSuite(name=f"corpus_{table}", expectations=copies)
        )
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"corpus_{table}", data=batch, suite=table_suite)
        )
        result = definition.run(batch_parameters={"dataframe": tables[table]})
        outcomes.extend(summarise_result(table, item) for item in result.results)
    return outcomes


def summarise_result(table: str, result: ExpectationValidationResult) -> Outcome:
    """Reduce one GX expectation result to an `Outcome` of plain, JSON-ready values."""
    config = result.expectation_config
    assert config is not None, "GX results always carry their expectation"
    details = result.result or {}
    values = details.get("partial_unexpected_list") or []
    rows = details.get("partial_unexpected_index_list") or [None] * len(values)
    label = ROW_LABELS.get(table)
    examples = [
        f"{label} {row}: {shorten(value)}" if label and row is not None else shorten(value)
        for value, row in zip(values[:MAX_EXAMPLES], rows, strict=False)
    ]
    kwargs = {
        key: to_native(value)
        for key, value in config.kwargs.items()
        if key not in ("batch_id", "column") and value is not None
    }
    if all(isinstance(item, str) and len(item) == 1 for item in kwargs.get("value_set", [None])):
        kwargs["value_set"] = "".join(kwargs["value_set"])  # a set of characters reads as a string
    return Outcome(
        type=config.type,
        table=table,
        column=config.kwargs.get("column"),
        kwargs=kwargs,
        success=bool(result.success),
        observed_value=to_native(details.get("observed_value")),
        unexpected_count=details.get("unexpected_count"),
        unexpected_examples=tuple(examples),
        error=find_exception(result.exception_info),
        notes=str(config.notes) if config.notes else None,
    )


def find_exception(info: dict[str, Any] | None) -> str | None:
    """The message of an exception GX caught while checking. `info` is one record, or (when a
    metric failed) a mapping from metric id to records."""
    records = [info] if info and "raised_exception" in info else list((info or {}).values())
    messages = {
        str(record.get("exception_message"))
        for record in records
        if isinstance(record, dict) and record.get("raised_exception")
    }
    return "; ".join(sorted(messages)) or None


def to_native(value: Any) -> Any:
    """A numpy scalar (GX's observed values) as a plain Python number, for JSON."""
    return value.item() if hasattr(value, "item") else value


def shorten(value: Any) -> str:
    """`repr` of an example value, cut to a readable length (a bad line may be megabytes)."""
    if isinstance(value, str) and len(value) > MAX_EXAMPLE_CHARS:
        return repr(value[:MAX_EXAMPLE_CHARS]) + "..."
    return repr(to_native(value))
