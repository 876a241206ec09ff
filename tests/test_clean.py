import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.clean import decode_corpus
from pipeline.core.errors import PipelineError
from tests.support.project import Project


def test_decode_corpus_names_the_bad_byte():
    with pytest.raises(PipelineError, match="not valid UTF-8 at byte 2"):
        decode_corpus(b"ab\xff", "data/raw/corpus.txt")


# --- the extra training text: the corpus's rules, but it may be empty --------------------------


def test_the_stage_cleans_the_extra_text_and_counts_it(tmp_path):
    project = Project.create(tmp_path)
    project.run_ok("download")
    assert (tmp_path / "data/raw/extra.txt").read_bytes() == b""
    project.run_ok("clean")
    assert (tmp_path / "data/clean/extra.txt").read_bytes() == b""
    assert json.loads((tmp_path / "reports/clean.json").read_text())["extra_chars"] == 0
    (tmp_path / "data/raw/extra.txt").write_bytes(b"HAMLET\r\n\r\n\r\nWho's there?")
    project.run_ok("clean")
    assert (tmp_path / "data/clean/extra.txt").read_text() == "hamlet\n\nwho's there?\n"
    stats = json.loads((tmp_path / "reports/clean.json").read_text())
    assert stats["extra_chars"] == len("hamlet\n\nwho's there?\n")
    assert stats["clean_chars"] == len((tmp_path / "data/clean/corpus.txt").read_text())


def test_the_stage_refuses_an_extra_text_that_is_not_utf8(tmp_path):
    project = Project.create(tmp_path)
    project.run_ok("download", "clean")
    before = project.snapshot()
    (tmp_path / "data/raw/extra.txt").write_bytes(b"ab\xff")
    result = project.run("clean")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "clean: error: data/raw/extra.txt: not valid UTF-8 at byte 2" in result.stderr
    after = project.snapshot()
    del before["data/raw/extra.txt"], after["data/raw/extra.txt"]
    assert after == before  # no output written


# --- property tests: any text cleans or fails with PipelineError, never another exception -------


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_decode_or_fail_with_pipeline_error(data):
    try:
        decode_corpus(data, "corpus.txt")
    except PipelineError as error:
        assert str(error).startswith("corpus.txt: not valid UTF-8 at byte ")
