"""The validate stage's table builders, report helpers, atomic report swap and CLI."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.core.errors import ValidationFailed
from pipeline.validate import (
    build_character_table,
    build_line_table,
    compute_statistics,
    raise_for_failures,
    read_corpus,
    summarise_validation,
)
from tests.support.project import ROOT, copy_project, run_module, tiny_params

SCENE = (
    "first witch.\nwhen shall we three meet again\nin thunder, lightning, or in rain?\n\n"
    "second witch.\nwhen the hurlyburly's done,\nwhen the battle's lost and won.\n\n"
    "macbeth.\nso foul and fair a day i have not seen.\n"
)


def test_build_line_table_numbers_lines_from_one_without_the_newline():
    table = build_line_table("fair is\n\nfoul\n")
    assert table["text"].tolist() == ["fair is", "", "foul"]
    assert table["length"].tolist() == [7, 0, 4]
    assert table.index.tolist() == [1, 2, 3]


def test_build_line_table_keeps_a_last_line_without_newline_and_handles_empty_text():
    assert build_line_table("a\nbc")["length"].tolist() == [1, 2]
    assert build_line_table("").empty


def test_build_character_table_has_one_row_per_distinct_character():
    table = build_character_table("aab!\n")
    assert table.to_dict("list") == {
        "character": ["a", "b", "!", "\n"],
        "count": [2, 1, 1, 1],
        "is_letter": [True, True, False, False],
    }
    assert build_character_table("").empty


def test_compute_statistics_counts_letters_against_every_character():
    text = "ab 1\nxyz\n"
    statistics = compute_statistics(build_line_table(text), build_character_table(text))
    assert statistics == {
        "total_chars": 9,
        "line_count": 2,
        "longest_line": 4,
        "vocab_size": 8,
        "letter_count": 5,
        "letter_share": 5 / 9,
    }


def test_compute_statistics_of_an_empty_text_is_all_zero():
    statistics = compute_statistics(build_line_table(""), build_character_table(""))
    assert set(statistics.values()) == {0}


def test_read_corpus_keeps_carriage_returns_and_replaces_bad_bytes(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes(b"fair\r\nfoul\xff\n")
    assert read_corpus(path) == "fair\r\nfoul\ufffd\n"


def test_summarise_validation_counts_failures(corpus_suite):
    passed = corpus_suite.Outcome("expect_a", "lines", "text", {}, True)
    failed = corpus_suite.Outcome("expect_b", "stats", None, {"min_value": 1}, False, 0)
    summary = summarise_validation({"total_chars": 3}, [passed, failed])
    assert summary["success"] is False
    assert (summary["evaluated_expectations"], summary["failed_expectations"]) == (2, 1)
    assert summary["expectations"][1]["observed_value"] == 0
    json.dumps(summary)  # plain values only
    assert summarise_validation({}, [passed])["success"] is True


def test_raise_for_failures_logs_each_failure_and_names_them_all(corpus_suite, caplog):
    ok = corpus_suite.Outcome("expect_ok", "lines", "text", {}, True)
    markup = corpus_suite.Outcome(
        "expect_column_values_to_not_match_regex",
        "lines",
        "text",
        {"regex": "<[^>]+>"},
        False,
        unexpected_count=3,
        unexpected_examples=("line 1: '<html>'",),
    )
    size = corpus_suite.Outcome(
        "expect_column_sum_to_be_between", "characters", "count", {"min_value": 10}, False, 4
    )
    raise_for_failures([ok])
    with pytest.raises(ValidationFailed, match=r"^2 of 3 expectations failed: expect_column_value"):
        raise_for_failures([ok, markup, size])
    assert [record.getMessage() for record in caplog.records] == [
        "expect_column_values_to_not_match_regex on lines.text (regex '<[^>]+>') failed: "
        "3 unexpected, e.g. line 1: '<html>'",
        "expect_column_sum_to_be_between on characters.count (min_value 10) failed: observed 4",
    ]


def test_importing_the_stage_does_not_import_gx():
    code = "import sys, pipeline.validate; sys.exit('great_expectations' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=False).returncode == 0


def run_stage_in(project: Path) -> subprocess.CompletedProcess[str]:
    return run_module("validate", cwd=project, timeout=120)


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of the package plus tiny params (min_chars 1000) and an empty data/clean/."""
    copy_project(tmp_path, tiny_params(validate={"min_chars": 1000}), extras=())
    (tmp_path / "data" / "clean").mkdir(parents=True)
    return tmp_path


def test_cli_fails_on_markup_then_passes_once_the_corpus_is_fixed(project):
    corpus = project / "data" / "clean" / "corpus.txt"
    corpus.write_text("<html><body>\n" + SCENE * 5, encoding="utf-8")
    failed = run_stage_in(project)
    assert failed.returncode == 1, failed.stderr
    assert (
        "validate: error: 2 of 7 expectations failed: no HTML markup (lines.text), "
        "allowed characters (characters.character: 2 not in validate.allowed_chars, e.g. '<', "
        "'>'; add them there or clean them out);"
    ) in failed.stderr
    assert "on lines.text (regex" in failed.stderr  # the logged line with the observed rows
    summary = json.loads((project / "reports" / "validation.json").read_text(encoding="utf-8"))
    assert (summary["success"], summary["failed_expectations"]) == (False, 2)
    assert (project / "reports" / "validation" / "index.html").is_file()

    corpus.write_text(SCENE * 5, encoding="utf-8")
    passed = run_stage_in(project)
    assert passed.returncode == 0, passed.stderr
    summary = json.loads((project / "reports" / "validation.json").read_text(encoding="utf-8"))
    assert summary["success"] is True
    assert summary["statistics"]["total_chars"] == len(SCENE * 5)
    assert [item["success"] for item in summary["expectations"]] == [True] * 7
    # The failed run's report is gone: the folder was replaced, not merged.
    assert [path.name for path in (project / "reports" / "validation").iterdir()] == ["index.html"]
    report = (project / "reports" / "validation" / "index.html").read_text(encoding="utf-8")
    assert "7 of 7 expectations passed" in report and "FAIL" not in report
    assert sorted(path.name for path in (project / "reports").iterdir()) == [
        "validation",
        "validation.json",
    ]


def test_cli_reports_a_missing_corpus_in_one_line(project):
    result = run_stage_in(project)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("validate: error: No such file")
    assert not (project / "reports").exists()
