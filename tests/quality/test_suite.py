"""The real GX suite on a clean Macbeth-like text and on corrupted ones."""

from types import ModuleType

import pandas as pd
import pytest

from pipeline.core.config import ValidateParams
from pipeline.core.params import load_params
from pipeline.validate import read_corpus, validate_corpus
from tests.support.project import ROOT

SCENE = """first witch.
when shall we three meet again
in thunder, lightning, or in rain?

second witch.
when the hurlyburly's done,
when the battle's lost and won.

third witch.
that will be ere the set of sun.

all.
fair is foul, and foul is fair:
hover through the fog and filthy air.

macbeth.
so foul and fair a day i have not seen.
is this a dagger which i see before me,
the handle toward my hand? come, let me clutch thee!
"""
CLEAN = SCENE * 10  # about 4 KB


@pytest.fixture(scope="module")
def params() -> ValidateParams:
    """The shipped `validate` params, with `min_chars` lowered to fit a 4 KB fixture."""
    shipped = load_params(ROOT / "params.yaml").validate_
    return shipped.model_copy(update={"min_chars": 2000})


def failures(text: str, params: ValidateParams, corpus_suite: ModuleType) -> dict[str, object]:
    """`{expectation type or type:column: outcome}` for every failed expectation."""
    _, outcomes = validate_corpus(text, params)
    return {
        f"{outcome.type}:{outcome.column}" if outcome.column else outcome.type: outcome
        for outcome in outcomes
        if not outcome.success
    }


def test_clean_corpus_passes_every_expectation(params, corpus_suite):
    statistics, outcomes = validate_corpus(CLEAN, params)
    assert len(outcomes) == 7
    assert [outcome.describe() for outcome in outcomes if not outcome.success] == []
    assert statistics["total_chars"] == len(CLEAN)
    assert statistics["vocab_size"] == len(set(CLEAN))
    by_type = {outcome.type: outcome for outcome in outcomes}
    assert by_type["expect_column_sum_to_be_between"].observed_value == len(CLEAN)
    assert by_type["expect_table_row_count_to_be_between"].observed_value == len(set(CLEAN))


def test_html_error_page_fails_markup_and_character_checks(params, corpus_suite):
    page = (
        "<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head>\n"
        "<body><p>please&nbsp;try again later</p></body></html>\n"
    )
    failed = failures(page + CLEAN, params, corpus_suite)
    markup = failed["expect_column_values_to_not_match_regex:text"]
    assert markup.kwargs["regex"] == corpus_suite.MARKUP_PATTERN
    assert markup.name == "no HTML markup (lines.text)"
    assert markup.unexpected_count == 3
    assert markup.unexpected_examples[0] == "line 1: '<!DOCTYPE html>'"
    assert "'<'" in failed["expect_column_values_to_be_in_set:character"].unexpected_examples


def test_entities_alone_count_as_markup(params, corpus_suite):
    failed = failures("fair&#160;is foul;\n" + CLEAN, params, corpus_suite)
    assert failed["expect_column_values_to_not_match_regex:text"].unexpected_count == 1


def test_gutenberg_licence_lines_fail_only_the_licence_check(params, corpus_suite):
    licence = (
        "this ebook is for the use of anyone anywhere. project gutenberg license\n"
        "you may copy it under the terms at www.gutenberg.org.\n"
    )
    failed = failures(CLEAN + licence, params, corpus_suite)
    assert list(failed) == ["expect_column_values_to_not_match_regex:text"]
    outcome = failed["expect_column_values_to_not_match_regex:text"]
    assert outcome.kwargs["regex"] == corpus_suite.LICENCE_PATTERN
    assert outcome.unexpected_count == 2
    assert outcome.unexpected_examples[0].startswith(f"line {CLEAN.count(chr(10)) + 1}: ")


def test_gutenberg_start_marker_is_found_in_any_case(params, corpus_suite):
    marker = "*** Start of the ebook macbeth ***\n"
    failed = failures(marker + CLEAN, params, corpus_suite)
    assert failed["expect_column_values_to_not_match_regex:text"].unexpected_count == 1
    assert "'*'" in failed["expect_column_values_to_be_in_set:character"].unexpected_examples


def test_binary_bytes_fail_the_allowed_characters(params, corpus_suite, tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes(b"\x00\x01\xff\xfe\r\n" + CLEAN.encode())
    failed = failures(read_corpus(path), params, corpus_suite)
    outcome = failed["expect_column_values_to_be_in_set:character"]
    assert outcome.unexpected_count == 4  # NUL, U+0001, U+FFFD (both bad bytes), carriage return
    assert outcome.kwargs["value_set"] == "".join(sorted(set(params.allowed_chars)))


def test_truncated_corpus_fails_the_size_check(params, corpus_suite):
    short = CLEAN[:1500]
    outcome = failures(short, params, corpus_suite)["expect_column_sum_to_be_between:count"]
    assert outcome.observed_value == 1500
    assert "observed 1500" in outcome.describe()


def test_too_long_line_fails_the_length_check(params, corpus_suite):
    text = CLEAN + "fair is foul " * 100 + "\n"
    outcome = failures(text, params, corpus_suite)["expect_column_values_to_be_between:length"]
    assert outcome.unexpected_count == 1
    assert outcome.unexpected_examples == (f"line {CLEAN.count(chr(10)) + 1}: 1300",)


def test_digits_fail_the_letter_share(params, corpus_suite):
    text = "0123456789 " * 400 + "\n" + SCENE
    outcome = failures(text, params, corpus_suite)["expect_column_min_to_be_between:letter_share"]
    assert 0 < outcome.observed_value < params.min_letter_share


def test_tiny_vocabulary_fails_the_vocabulary_check(params, corpus_suite):
    text = "fair is foul\n" * 300
    failed = failures(text, params, corpus_suite)
    assert list(failed) == ["expect_table_row_count_to_be_between"]
    assert failed["expect_table_row_count_to_be_between"].observed_value == len(set(text))


def test_build_corpus_suite_takes_every_threshold_from_params(params, corpus_suite):
    suite = corpus_suite.build_corpus_suite(params)
    assert list(suite) == ["lines", "characters", "stats"]
    settings = {
        (expectation.expectation_type, getattr(expectation, "column", None)): expectation
        for expectations in suite.values()
        for expectation in expectations
    }
    assert settings[("expect_column_values_to_be_between", "length")].max_value == (
        params.max_line_length
    )
    assert settings[("expect_column_sum_to_be_between", "count")].min_value == params.min_chars
    assert settings[("expect_table_row_count_to_be_between", None)].max_value == params.max_vocab
    assert settings[("expect_column_min_to_be_between", "letter_share")].min_value == (
        params.min_letter_share
    )


def test_run_corpus_suite_leaves_the_suite_unchanged(params, corpus_suite):
    suite = corpus_suite.build_corpus_suite(params)
    tables = {
        "lines": pd.DataFrame({"text": ["fair is foul"], "length": [12]}),
        "characters": pd.DataFrame({"character": ["a"], "count": [1], "is_letter": [True]}),
        "stats": pd.DataFrame({"letter_share": [1.0]}),
    }
    outcomes = corpus_suite.run_corpus_suite(tables, suite)
    assert len(outcomes) == 7
    assert all(expectation.id is None for group in suite.values() for expectation in group)


def test_run_corpus_suite_reports_a_broken_expectation_as_an_error(corpus_suite):
    import great_expectations.expectations as gxe  # noqa: PLC0415 (after the fixture's setenv)

    suite = {"lines": [gxe.ExpectColumnMaxToBeBetween(column="missing", max_value=3)]}
    (outcome,) = corpus_suite.run_corpus_suite({"lines": pd.DataFrame({"text": ["a"]})}, suite)
    assert not outcome.success
    assert 'The column "missing"' in outcome.error
    assert "raised" in outcome.describe()


def test_run_corpus_suite_refuses_a_suite_for_a_missing_table(params, corpus_suite):
    with pytest.raises(ValueError, match="not built: stats"):
        corpus_suite.run_corpus_suite(
            {"lines": pd.DataFrame(), "characters": pd.DataFrame()},
            corpus_suite.build_corpus_suite(params),
        )
