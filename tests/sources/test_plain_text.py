"""Tests for `pipeline/sources/plain_text.py`: what counts as a corpus's plain text."""

from __future__ import annotations

import pytest

from pipeline.core.errors import DownloadError
from pipeline.sources.plain_text import check_text


def test_check_text_accepts_plain_text_and_strips_a_bom() -> None:
    assert check_text(b"\xef\xbb\xbfHello\n", "text/plain") == "Hello\n"


@pytest.mark.parametrize(
    ("data", "content_type", "match"),
    [
        (b"<p>hi</p>", "text/html; charset=utf-8", "HTML page"),
        (b"\n  <!DOCTYPE html><html></html>", "text/plain", "HTML page"),
        (b"\xef\xbb\xbf<html><body>", None, "HTML page"),
        (b"abc\x00def", None, "NUL bytes"),
        (b"caf\xe9 au lait", None, "not valid UTF-8 at byte 3"),
        (b" \n", None, "empty body"),
    ],
)
def test_check_text_rejects(data: bytes, content_type: str | None, match: str) -> None:
    with pytest.raises(DownloadError, match=match):
        check_text(data, content_type)
