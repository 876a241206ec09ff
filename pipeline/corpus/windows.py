"""Windows and splits of the encoded corpus: the `windows.json` record, window counts and starts,
the contiguous train/validation/test split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.core.errors import PipelineError


@dataclass(frozen=True)
class WindowSpec:
    seq_len: int
    stride: int
    train_chars: int
    val_chars: int
    test_chars: int
    train_windows: int
    val_windows: int
    test_windows: int
    vocab_size: int
    # Leading characters of `train_ids.npy` that are extra text (with its blank-line separator),
    # not the corpus; 0 without `download.extra_members`.
    extra_chars: int = 0


def count_windows(length: int, seq_len: int, stride: int) -> int:
    """Windows of `seq_len` inputs plus one shifted target that fit in `length` characters."""
    span = seq_len + 1
    return 0 if length < span else (length - span) // stride + 1


def window_starts(length: int, seq_len: int, stride: int) -> np.ndarray:
    """Start offsets of every window: `ids[s : s + seq_len + 1]` is one (inputs, targets) pair."""
    return np.arange(count_windows(length, seq_len, stride), dtype=np.int64) * stride


def split_points(length: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """Where validation and test begin in a text of `length` characters."""
    val_cut = int(round(length * (1 - val_fraction - test_fraction)))
    test_cut = int(round(length * (1 - test_fraction)))
    return val_cut, test_cut


def split_ids(
    ids: np.ndarray, val_fraction: float, test_fraction: float, seq_len: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contiguous split by position: train, then validation (`val_fraction` of the text), then
    test (the last `test_fraction`)."""
    val_cut, test_cut = split_points(len(ids), val_fraction, test_fraction)
    parts = {"training": ids[:val_cut], "validation": ids[val_cut:test_cut], "test": ids[test_cut:]}
    for name, part in parts.items():
        if len(part) < seq_len + 1:
            raise PipelineError(
                f"the {name} split has {len(part)} characters, fewer than one window "
                f"(seq_len + 1 = {seq_len + 1}); use a longer corpus, a smaller encode.seq_len "
                "or other encode.val_fraction / encode.test_fraction"
            )
    train, val, test = (part.copy() for part in parts.values())
    return train, val, test
