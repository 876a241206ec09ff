"""Cleaning raw text: the Gutenberg header and footer stripped, line endings, BOM and Unicode
normalised (in bounded pieces), optional lower-casing, blank lines squeezed. Pure functions; the
clean stage does the I/O."""

from __future__ import annotations

import functools
import re
import sys
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


@functools.cache
def backward_combining() -> frozenset[str]:
    """Starters that canonical composition may join to the character before them: the second
    half of a two-character canonical decomposition, and the Hangul vowel and trailing jamo
    (composed by rule, not by table). Computed once, from Python's own Unicode tables."""
    seconds = {
        chr(int(parts[1], 16))
        for code in range(sys.maxunicode + 1)
        if (decomposition := unicodedata.decomposition(chr(code)))
        and not decomposition.startswith("<")
        and len(parts := decomposition.split()) == 2
    }
    jamo = {chr(code) for code in [*range(0x1161, 0x1176), *range(0x11A8, 0x11C3)]}
    return frozenset(seconds | jamo)


def is_boundary(char: str) -> bool:
    """Whether NFKC never reaches across a cut just before `char`: it starts with a starter
    (combining class 0, also after compatibility decomposition) that composes with nothing
    before it. Any ASCII character is one; so is U+FDFA."""
    if char < "\x80":
        return True
    first = unicodedata.normalize("NFKD", char)[0]
    return (
        unicodedata.combining(char) == 0
        and unicodedata.combining(first) == 0
        and not {char, first} & backward_combining()
    )


def find_cut(text: str, start: int, size: int) -> int:
    """Where a piece of `text` from `start` ends: after the first `\n` in the `size` characters
    from `start + size`, else just before the first boundary from there on (`is_boundary`; in
    practice the next character), else at the end (a text of combining marks alone)."""
    end = start + size
    if end >= len(text):
        return len(text)
    newline = text.find("\n", end, end + size)
    if newline != -1:
        return newline + 1
    return next((i for i in range(end, len(text)) if is_boundary(text[i])), len(text))


def split_after_lines(text: str, size: int) -> Iterator[str]:
    """`text` in consecutive pieces of about `size` to `2 * size` characters that NFKC can
    normalise one by one: each ends after a `\n`, or, in a line longer than that, just before a
    character NFKC never joins to what precedes it (`is_boundary`)."""
    start = 0
    while start < len(text):
        end = find_cut(text, start, size)
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
    characters across a line break or a boundary (`is_boundary`), so normalising pieces cut
    there gives the same text, and a text without line breaks costs no more memory than one
    with them.
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
