"""The encode stage's `vocab.json`, read back and checked: its one reader.

Dependency-free (no NumPy, no params schema), so the served generator carries it at no cost, and
generation, serving, the encoded-data reader and the benchmarks all refuse a bad file alike: one
line that says which stage to re-run.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.paths import VOCAB_PATH

RERUN = "re-run `dvc repro encode`"


def read_vocabulary(path: Path = VOCAB_PATH) -> list[str]:
    """The characters in id order, from `vocab.json`: a non-empty list of distinct characters."""
    try:
        with path.open(encoding="utf-8") as stream:
            chars = json.load(stream)["chars"]
    except FileNotFoundError:
        raise PipelineError(f"{path}: not found; {RERUN} (or pass the right --vocab)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise PipelineError(f"{path}: not a vocabulary ({error}); {RERUN}") from None
    if (
        not isinstance(chars, list)
        or not chars
        or not all(isinstance(c, str) and len(c) == 1 for c in chars)
        or len(set(chars)) != len(chars)
    ):
        raise PipelineError(f"{path}: `chars` must be a list of distinct characters; {RERUN}")
    return chars
