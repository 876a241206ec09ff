"""The encode stage's outputs, read back and checked: the one reader of `data/encoded/`.

No TensorFlow here: the baseline stage, generation and serving read the same files without it.
Every problem is one line that says which stage to re-run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core import files
from pipeline.core.errors import PipelineError
from pipeline.core.paths import ENCODED_DIR, VOCAB_FILE, WINDOWS_FILE, ids_file
from pipeline.corpus.vocabulary import RERUN, read_vocabulary
from pipeline.corpus.windows import WindowSpec

SPLITS = ("train", "val", "test")  # `<split>_ids.npy`


@dataclass(frozen=True)
class EncodedData:
    vocabulary: list[str]
    train_ids: np.ndarray  # (train_chars,) uint8 ids
    val_ids: np.ndarray  # (val_chars,)
    test_ids: np.ndarray  # (test_chars,)
    spec: WindowSpec


def load_encoded(folder: Path = ENCODED_DIR) -> EncodedData:
    """Vocabulary, the three id arrays and the window settings, checked against each other."""
    vocabulary = read_vocabulary(folder / VOCAB_FILE)
    try:
        spec = WindowSpec(**files.read_json(folder / WINDOWS_FILE))
    except (json.JSONDecodeError, TypeError) as error:
        raise PipelineError(f"{folder / WINDOWS_FILE}: unreadable ({error}); {RERUN}") from None
    train, val, test = (files.load_array(folder / ids_file(split)) for split in SPLITS)
    largest = max(int(ids.max()) for ids in (train, val, test))
    if len(vocabulary) != spec.vocab_size or largest >= len(vocabulary):
        raise PipelineError(f"{folder}: ids and vocabulary disagree; {RERUN}")
    return EncodedData(vocabulary, train, val, test, spec)


WARMUP_CHARS = 1000  # how far a continuous history reaches back before a scored split


def heldout_split(data: EncodedData, split: str) -> tuple[np.ndarray, np.ndarray]:
    """`(ids, warmup)` of a held-out split ("validation" or "test"): its ids, and the
    `WARMUP_CHARS` characters just before it that a continuous protocol reads first."""
    if split == "validation":
        return data.val_ids, data.train_ids[-WARMUP_CHARS:]
    if split == "test":
        return data.test_ids, data.val_ids[-WARMUP_CHARS:]
    raise ValueError(f"unknown split {split!r}")
