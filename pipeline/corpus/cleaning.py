"""Cleaning raw text: the Gutenberg header and footer stripped, line endings, BOM and Unicode
normalised (in bounded pieces), optional lower-casing, blank lines squeezed. Pure functions; the
clean stage does the I/O."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

from pipeline.core.config import CleanParams
from pipeline.core.errors import PipelineError

# Gutenberg wraps each book in "*** START OF THE PROJECT GUTENBERG EBOOK ... ***" and
# "*** END OF ... ***" lines (older files say "THIS PROJECT GUTENBERG EBOOK").
_GUTENBERG_START = re.compile(r"^\*{3}\s*START OF (THE|THIS) PROJECT GUTENBERG.*$", re.I | re.M)


_GUTENBERG_END = re.compile(r"^\*{3}\s*END OF (THE|THIS) PROJECT GUTENBERG.*$", re.I | re.M)


# NFKC runs one block of about this many characters (ending at a line break) at a time, so a text
# that normalisation multiplies is stopped near `clean.max_chars` instead of filling memory first.
NORMALISE_BLOCK_CHARS = 1_000_000


# Typographic characters that NFKC keeps but that only add rare symbols to the vocabulary.
_ASCII_FOLDS = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u2013": "-",
    "\u2014": "--",
}


@dataclass(frozen=True)
class CleanStats:
    raw_chars: int
    clean_chars: int
    lines: int
    vocab_size: int
    gutenberg_stripped: bool


def strip_gutenberg(text: str) -> tuple[str, bool]:
    """Return the text between the Gutenberg START and END markers, and whether any was found.

    Books joined end to end (as `download.extra_members` joins them) keep each book's body: the
    licence of one and the header of the next go together.
    """
    start = _GUTENBERG_START.search(text)
    end = _GUTENBERG_END.search(text, start.end() if start else 0)
    if not start and not end:
        return text, False
    body_start = start.end() if start else 0
    body_end = end.start() if end else len(text)
    bodies = [text[body_start:body_end]]
    while end and (start := _GUTENBERG_START.search(text, end.end())):
        end = _GUTENBERG_END.search(text, start.end())
        bodies.append(text[start.end() : end.start() if end else len(text)])
    return "\n".join(bodies), True


def split_after_lines(text: str, size: int) -> Iterator[str]:
    """`text` in consecutive pieces of at least `size` characters, each ending after a `\\n`."""
    start = 0
    while start < len(text):
        end = text.find("\n", start + size)
        end = len(text) if end == -1 else end + 1
        yield text[start:end]
        start = end


def check_length(text_length: int, max_chars: int | None) -> None:
    if max_chars is not None and text_length > max_chars:
        raise PipelineError(
            f"the corpus is over clean.max_chars={max_chars} characters after Unicode "
            "normalisation (NFKC expands some characters, e.g. U+FDFA into 18); check the "
            "source, or raise clean.max_chars"
        )


def normalise_text(text: str, max_chars: int | None = None) -> str:
    """Unify line endings to `\\n`, drop BOMs, apply NFKC and fold typographic punctuation.

    Raises `PipelineError` as soon as the normalised text passes `max_chars`. NFKC never joins
    characters across a line break, so normalising line-aligned pieces gives the same text.
    """
    # A byte-order mark anywhere (files joined end to end carry one each) is an artefact, not text.
    text = text.replace("\ufeff", "").replace("\r\n", "\n").replace("\r", "\n")
    pieces: list[str] = []
    length = 0
    for piece in split_after_lines(text, NORMALISE_BLOCK_CHARS):
        pieces.append(unicodedata.normalize("NFKC", piece))
        length += len(pieces[-1])
        check_length(length, max_chars)
    text = "".join(pieces)
    # One `replace` per character: each is a fast C scan, where `str.translate` with a mapping
    # looks up every character in Python (seconds on a 100 MB corpus).
    for typographic, plain in _ASCII_FOLDS.items():
        text = text.replace(typographic, plain)
    return text


def squeeze_blank_lines(text: str, max_blank_lines: int) -> str:
    """Trim trailing spaces, keep at most `max_blank_lines` blank lines in a row, end with `\\n`."""
    lines = [line.rstrip() for line in text.split("\n")]
    kept: list[str] = []
    blank_run = 0
    for line in lines:
        blank_run = blank_run + 1 if not line else 0
        if blank_run <= max_blank_lines:
            kept.append(line)
    return "\n".join(kept).strip("\n") + "\n"


def clean_text(raw: str, params: CleanParams) -> tuple[str, CleanStats]:
    text = normalise_text(raw, params.max_chars)
    stripped = False
    if params.strip_gutenberg:
        text, stripped = strip_gutenberg(text)
    if params.lowercase:
        text = text.lower()
    text = squeeze_blank_lines(text, params.max_blank_lines)
    check_length(len(text), params.max_chars)  # folding and lower-casing may lengthen it too
    if not text.strip():
        raise PipelineError(
            "the corpus is empty after cleaning (was the download empty, or only a Project "
            "Gutenberg header and footer?)"
        )
    stats = CleanStats(
        raw_chars=len(raw),
        clean_chars=len(text),
        lines=text.count("\n"),
        vocab_size=len(set(text)),
        gutenberg_stripped=stripped,
    )
    return text, stats


def clean_extra_text(raw: str, params: CleanParams) -> str:
    """The extra training text cleaned like the corpus (each within `clean.max_chars`); a blank
    text (no `download.extra_members`) stays empty."""
    if not raw.strip():
        return ""
    try:
        text, _ = clean_text(raw, params)
    except PipelineError as error:
        raise PipelineError(f"the extra text: {error}") from None
    return text
