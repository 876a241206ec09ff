"""pipeline/corpus/cleaning.py: each cleaning rule, the size cap after normalisation, and (property
tests) any text cleans or fails with PipelineError."""

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.config import CleanParams
from pipeline.core.errors import PipelineError
from pipeline.corpus.cleaning import (
    clean_extra_text,
    clean_text,
    is_boundary,
    normalise_text,
    split_after_lines,
    squeeze_blank_lines,
    strip_gutenberg,
)
from tests.support.params import committed

GUTENBERG = (
    "The Project Gutenberg eBook of Macbeth\n"
    "*** START OF THE PROJECT GUTENBERG EBOOK MACBETH ***\n"
    "Fair is foul.\n"
    "*** END OF THE PROJECT GUTENBERG EBOOK MACBETH ***\n"
    "Licence text.\n"
)


def test_strip_gutenberg_keeps_only_the_body():
    body, stripped = strip_gutenberg(GUTENBERG)
    assert stripped
    assert body.strip() == "Fair is foul."


def test_strip_gutenberg_keeps_each_body_of_books_joined_end_to_end():
    hamlet = GUTENBERG.replace("MACBETH", "HAMLET").replace("Fair is foul.", "Who's there?")
    body, stripped = strip_gutenberg(GUTENBERG + "\n\n" + hamlet)
    assert stripped
    assert body.split() == ["Fair", "is", "foul.", "Who's", "there?"]


def test_strip_gutenberg_leaves_plain_text_alone():
    assert strip_gutenberg("Fair is foul.\n") == ("Fair is foul.\n", False)


def test_normalise_text_unifies_line_endings_bom_and_quotes():
    raw = "\ufeffFair\r\nis\rfoul \u2018tis\u2014so\ufb01"
    assert normalise_text(raw) == "Fair\nis\nfoul 'tis--sofi"


def test_squeeze_blank_lines_limits_runs_and_trims():
    assert squeeze_blank_lines("\n\na  \n\n\n\nb\n\n", 1) == "a\n\nb\n"
    assert squeeze_blank_lines("a\n\n\nb", 0) == "a\nb\n"


def test_clean_text_lowercases_and_reports_statistics():
    text, stats = clean_text(GUTENBERG, committed(CleanParams, lowercase=True))
    assert text == "fair is foul.\n"
    assert stats.gutenberg_stripped
    assert stats.clean_chars == len(text)
    assert stats.vocab_size == len(set(text))


def test_clean_text_does_not_change_its_input():
    raw = "A\r\nB"
    clean_text(raw, committed(CleanParams))
    assert raw == "A\r\nB"


def test_clean_text_rejects_an_empty_corpus():
    with pytest.raises(PipelineError, match="empty after cleaning"):
        clean_text("\n\n  \n", committed(CleanParams))


def test_clean_text_refuses_a_text_that_normalisation_multiplies():
    raw = "fair is foul\n" + "\ufdfa" * 1000  # 1013 characters in, 18,013 after NFKC
    with pytest.raises(PipelineError, match="over clean.max_chars=5000 characters after Unicode"):
        clean_text(raw, committed(CleanParams, max_chars=5000))
    text, _ = clean_text(raw, committed(CleanParams, max_chars=20_000))
    assert len(text) > 18_000


def test_the_extra_text_is_cleaned_by_the_corpus_rules():
    raw = "\ufeffHAMLET\r\n\r\n\r\n\u2018Tis   \nbitter cold\n"
    params = committed(CleanParams)
    assert (
        clean_extra_text(raw, params)
        == clean_text(raw, params)[0]
        == "hamlet\n\n'tis\nbitter cold\n"
    )


@pytest.mark.parametrize("raw", ["", "\n\n", "  \n"])
def test_no_extra_text_stays_empty(raw):
    assert clean_extra_text(raw, committed(CleanParams)) == ""


def test_clean_max_chars_applies_to_the_extra_text_alone():
    with pytest.raises(PipelineError, match="^the extra text: .*over clean.max_chars=10 "):
        clean_extra_text("to be or not to be\n", committed(CleanParams, max_chars=10))


CLEAN_PARAMS = st.builds(
    CleanParams,
    strip_gutenberg=st.booleans(),
    lowercase=st.booleans(),
    max_blank_lines=st.integers(min_value=0, max_value=3),
    max_chars=st.integers(min_value=1, max_value=500),
)


# Text with the characters cleaning cares about: line endings, BOMs, expanding ligatures, Gutenberg
# markers, typographic quotes, combining marks.
PIECES = st.sampled_from(
    ["\n", "\r\n", "\r", " ", "\t", "\ufeff", "\ufdfa", "\ufb01", "\u2018", "\u2014", "\u0301",
     "\u0130", "*** START OF THE PROJECT GUTENBERG EBOOK X ***\n",
     "*** END OF THIS PROJECT GUTENBERG EBOOK X ***\n", "Fair is foul"]
)  # fmt: skip


TEXTS = st.lists(PIECES | st.text(max_size=8), max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(raw=TEXTS, params=CLEAN_PARAMS)
def test_any_text_cleans_or_fails_with_pipeline_error(raw, params):
    try:
        text, stats = clean_text(raw, params)
    except PipelineError:
        return
    assert text.endswith("\n") and "\r" not in text and "\ufeff" not in text
    assert len(text) <= params.max_chars
    assert stats.clean_chars == len(text)


# Lines of any length: a long run without a line break is cut inside the line.
LONG_LINES = st.lists(
    PIECES | st.sampled_from(["\u1100\u1161\u11a8", "e\u0301\u0327"]), max_size=60
).map("".join)


@settings(max_examples=300, deadline=None)
@given(raw=TEXTS | LONG_LINES, size=st.integers(min_value=1, max_value=20))
def test_normalising_bounded_pieces_equals_normalising_the_whole(raw, size):
    text = raw.replace("\r", "\n")
    pieces = list(split_after_lines(text, size))
    assert "".join(pieces) == text
    # Each piece ends after a line break or before a boundary, and is bounded unless a line
    # holds no boundary at all (only combining marks).
    for piece, after in zip(pieces, pieces[1:], strict=False):
        assert piece.endswith("\n") or is_boundary(after[0])
    whole = unicodedata.normalize("NFKC", text)
    assert "".join(unicodedata.normalize("NFKC", piece) for piece in pieces) == whole


def test_a_long_line_is_cut_into_bounded_pieces():
    text = "\ufdfa" * 1000 + "e\u0301" * 1000
    pieces = list(split_after_lines(text, 100))
    assert max(map(len, pieces)) <= 101
    assert "".join(unicodedata.normalize("NFKC", piece) for piece in pieces) == (
        unicodedata.normalize("NFKC", text)
    )


@pytest.mark.parametrize(
    ("char", "boundary"),
    [("a", True), ("\ufdfa", True), ("\u0301", False), ("\u1161", False), ("\u0bbe", False)],
)
def test_is_boundary_knows_what_composes_with_what_precedes_it(char, boundary):
    assert is_boundary(char) is boundary
