import pytest

from pipeline.clean import (
    clean_text,
    decode_corpus,
    normalise_text,
    squeeze_blank_lines,
    strip_gutenberg,
)
from pipeline.config import CleanParams
from pipeline.errors import PipelineError

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


def test_strip_gutenberg_leaves_plain_text_alone():
    assert strip_gutenberg("Fair is foul.\n") == ("Fair is foul.\n", False)


def test_normalise_text_unifies_line_endings_bom_and_quotes():
    raw = "\ufeffFair\r\nis\rfoul \u2018tis\u2014so\ufb01"
    assert normalise_text(raw) == "Fair\nis\nfoul 'tis--sofi"


def test_squeeze_blank_lines_limits_runs_and_trims():
    assert squeeze_blank_lines("\n\na  \n\n\n\nb\n\n", 1) == "a\n\nb\n"
    assert squeeze_blank_lines("a\n\n\nb", 0) == "a\nb\n"


def test_clean_text_lowercases_and_reports_statistics():
    text, stats = clean_text(GUTENBERG, CleanParams(lowercase=True))
    assert text == "fair is foul.\n"
    assert stats.gutenberg_stripped
    assert stats.clean_chars == len(text)
    assert stats.vocab_size == len(set(text))


def test_clean_text_does_not_change_its_input():
    raw = "A\r\nB"
    clean_text(raw, CleanParams())
    assert raw == "A\r\nB"


def test_clean_text_rejects_an_empty_corpus():
    with pytest.raises(PipelineError, match="empty after cleaning"):
        clean_text("\n\n  \n", CleanParams())


def test_decode_corpus_names_the_bad_byte():
    with pytest.raises(PipelineError, match="not valid UTF-8 at byte 2"):
        decode_corpus(b"ab\xff", "data/raw/corpus.txt")
