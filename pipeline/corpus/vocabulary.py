"""The encode stage's `vocab.json`, read back and checked: its one reader.

Dependency-free (no NumPy, no params schema), so the served generator carries it at no cost, and
generation, serving, the encoded-data reader and the benchmarks all refuse a bad file alike: one
line that says which stage to re-run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.core.bounded import BoundsError, read_json
from pipeline.core.errors import PipelineError
from pipeline.core.paths import (
    VOCAB_PATH,
)

RERUN = "re-run `dvc repro encode`"


# Ids are uint8 or uint16 (`encode_text`), so a vocabulary has at most 65,536 characters, and
# its file at most about 1.2 MB even with every character escaped: a larger file is refused
# unread, and a deeply nested one before it can overflow the parser's stack.
MAX_VOCAB_SIZE = 2**16
MAX_VOCAB_BYTES = 2 * 2**20


def read_vocabulary(path: Path = VOCAB_PATH) -> list[str]:
    """The characters in id order, from `vocab.json`: a non-empty list of distinct characters."""
    try:
        chars = read_json(path, MAX_VOCAB_BYTES)["chars"]
    except FileNotFoundError:
        raise PipelineError(f"{path}: not found; {RERUN}") from None
    except OSError as error:
        raise PipelineError(f"{path}: not a vocabulary ({error.strerror}); {RERUN}") from None
    except (BoundsError, KeyError, TypeError) as error:
        raise PipelineError(f"{path}: not a vocabulary ({error}); {RERUN}") from None
    if (
        not isinstance(chars, list)
        or not chars
        or len(chars) > MAX_VOCAB_SIZE
        or not all(isinstance(c, str) and len(c) == 1 for c in chars)
        or len(set(chars)) != len(chars)
    ):
        raise PipelineError(f"{path}: `chars` must be a list of distinct characters; {RERUN}")
    return chars


def build_vocabulary(text: str, extra: str = "") -> list[str]:
    """The sorted distinct characters of `text` and `extra`; a character's id is its index."""
    return sorted(set(text) | set(extra))


def encode_text(text: str, vocabulary: list[str]) -> np.ndarray:
    """Map each character to its id (uint8 for up to 256 symbols, else uint16)."""
    index = {char: position for position, char in enumerate(vocabulary)}
    unknown = sorted(set(text) - index.keys())
    if unknown:
        raise PipelineError(f"characters not in the vocabulary: {''.join(unknown)!r}")
    dtype = np.uint8 if len(vocabulary) <= 256 else np.uint16
    if not vocabulary or max(map(ord, vocabulary)) > 0xFF:  # beyond Latin-1: one by one
        return np.fromiter((index[char] for char in text), dtype=dtype, count=len(text))
    # Every character fits in one Latin-1 byte: map the bytes through a 256-entry table in numpy
    # (about 20x faster than the per-character lookup on a 100 MB corpus).
    table = np.zeros(256, dtype=dtype)
    table[[ord(char) for char in vocabulary]] = np.arange(len(vocabulary), dtype=dtype)
    return table[np.frombuffer(text.encode("latin-1"), dtype=np.uint8)]


def decode_ids(ids: np.ndarray, vocabulary: list[str]) -> str:
    return "".join(vocabulary[int(i)] for i in ids)
