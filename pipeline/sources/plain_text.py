"""Whether served bytes are the plain UTF-8 text a corpus must be: not empty, not binary, not
UTF-16, not an HTML error, login or captcha page served in its place. Used by the download stage
for the corpus and for each extra member."""

from __future__ import annotations

import re

from pipeline.core.errors import DownloadError

# How a browser recognises HTML (or XML) in a body of unknown type: the WHATWG MIME sniffing
# signatures, after leading whitespace (https://mimesniff.spec.whatwg.org/#rules-for-identifying-
# an-unknown-mime-type). Error, login and captcha pages often start with `<head>` or `<!--`.
MARKUP_START = re.compile(
    rb"<(?:!doctype html|html|\?xml"
    rb"|(?:head|script|iframe|h1|div|font|table|a|style|title|b|body|br|p|!--)[ >])",
    re.IGNORECASE,
)
UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def check_text(data: bytes, content_type: str | None) -> str:
    """Decode the corpus, or raise `DownloadError` if it is empty, binary or an HTML page."""
    media_type = (content_type or "").partition(";")[0].strip().lower()
    body = data.removeprefix(UTF8_BOM)
    start = body[:4096].lstrip()  # a prefix: no copy of a 100 MB body just to look at its start
    if media_type in ("text/html", "application/xhtml+xml") or MARKUP_START.match(start):
        raise DownloadError(
            "served an HTML page, not plain text (an error, login or captcha page?)"
        )
    if not body or body.isspace():
        raise DownloadError("served an empty body")
    if body.startswith(UTF16_BOMS):
        raise DownloadError("UTF-16 text (it starts with a UTF-16 byte-order mark); save as UTF-8")
    if b"\x00" in body:
        raise DownloadError("not text: contains NUL bytes (a binary file?)")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DownloadError(f"not valid UTF-8 at byte {error.start}") from None
