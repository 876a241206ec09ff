"""encode and train refuse a corpus that validation failed, also when run on their own."""

import json

import pytest

from pipeline.core.errors import PipelineError
from pipeline.quality.gate import failed_expectations, require_passed_validation
from tests.support.project import Project, run_module
from tests.support.refusals import error_line

FAILED = {
    "success": False,
    "expectations": [
        {"type": "expect_a", "table": "lines", "column": "text", "success": True},
        {"notes": "no HTML markup", "table": "lines", "column": "text", "success": False},
        {"type": "expect_table_row_count", "table": "characters", "success": False},
    ],
}


def test_failed_expectations_names_each_failure():
    names = failed_expectations(FAILED)
    assert names == ["no HTML markup (lines.text)", "expect_table_row_count (characters)"]
    assert failed_expectations({"success": True, "expectations": []}) == []


def test_require_passed_validation(tmp_path):
    summary = tmp_path / "validation.json"
    require_passed_validation(summary)  # no report yet: validate has not run
    summary.write_text(json.dumps(FAILED))
    with pytest.raises(PipelineError, match=r"failed 2 expectation\(s\): no HTML markup"):
        require_passed_validation(summary)
    for broken in ("{not json", "[]", '{"success": "no"}', "\xff"):
        summary.write_text(broken, encoding="latin-1")
        with pytest.raises(PipelineError, match="not a validation report"):
            require_passed_validation(summary)


@pytest.fixture(scope="module")
def failed_project(tmp_path_factory) -> Project:
    """A project whose data stages all ran on a good corpus, then validate failed on a changed
    one (HTML left in it): `encode` and `train` are what `dvc repro -s` would run next."""
    project = Project.create(tmp_path_factory.mktemp("gate"))
    project.run_ok("download", "clean", "validate", "encode")
    clean = project.root / "data" / "clean" / "corpus.txt"
    clean.write_text("<p>\n" + clean.read_text(encoding="utf-8"), encoding="utf-8")
    result = project.run("validate")
    assert result.returncode == 1, result.stderr
    return project


@pytest.mark.parametrize("stage", ["encode", "train"])
def test_a_stage_after_a_failed_validation_refuses_in_one_line(failed_project, stage):
    before = failed_project.snapshot()
    # not Project.run: train imports TensorFlow first, which is slow
    result = run_module(stage, cwd=failed_project.root, timeout=600)
    line = error_line(result, stage)
    assert "reports/validation.json says the corpus failed" in line
    assert "no HTML markup (lines.text)" in line
    assert failed_project.snapshot() == before
    assert not (failed_project.root / "models").exists()
