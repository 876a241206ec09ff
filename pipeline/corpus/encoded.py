"""The encode stage's outputs, read back and checked: the one reader of `data/encoded/`.

No TensorFlow here: the baseline stage, generation and serving read the same files without it.
Every problem is one line that says which stage to re-run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pipeline.core import bounded, files
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


WINDOWS_MAX_BYTES = 64 * 2**10  # a dozen numbers: anything larger is not the encode stage's


def read_window_spec(path: Path) -> WindowSpec:
    """`windows.json`: a JSON object of non-negative integers, one per `WindowSpec` field."""
    try:
        spec = WindowSpec(**bounded.read_json(path, WINDOWS_MAX_BYTES))
    except bounded.BoundsError as error:
        raise PipelineError(f"{path}: unreadable ({error}); {RERUN}") from None
    except TypeError as error:  # not an object, or a missing or unknown field
        reason = " ".join(str(error).split()).removeprefix("WindowSpec.__init__() ")
        raise PipelineError(f"{path}: unreadable ({reason}); {RERUN}") from None
    for name, value in asdict(spec).items():
        if type(value) is not int or value < 0:
            raise PipelineError(
                f"{path}: {name} must be a non-negative integer, got {value!r}; {RERUN}"
            )
    return spec


def check_ids(path: Path, ids: np.ndarray, vocab_size: int, expected_length: int) -> None:
    """Ids as the encode stage writes them: a 1-D array of unsigned integers below `vocab_size`,
    as long as `windows.json` says. A -1, a NaN or an empty split would otherwise be scored."""
    if ids.ndim != 1 or ids.dtype.kind not in "ui":
        shape = "x".join(map(str, ids.shape)) or "scalar"
        raise PipelineError(
            f"{path}: ids must be a 1-D array of integers, got {ids.dtype} of shape {shape}; "
            f"{RERUN}"
        )
    if len(ids) != expected_length:
        raise PipelineError(
            f"{path}: {len(ids)} ids, but windows.json says {expected_length}; {RERUN}"
        )
    if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        low, high = int(ids.min()), int(ids.max())
        raise PipelineError(
            f"{path}: ids from {low} to {high} are outside the vocabulary's 0..{vocab_size - 1}"
            f" (ids and vocabulary disagree); {RERUN}"
        )


def load_encoded(folder: Path = ENCODED_DIR) -> EncodedData:
    """Vocabulary, the three id arrays and the window settings, checked against each other:
    every reader of the encoded data (baseline, train, evaluate) gets ids it can index with."""
    vocabulary = read_vocabulary(folder / VOCAB_FILE)
    spec = read_window_spec(folder / WINDOWS_FILE)
    if len(vocabulary) != spec.vocab_size:
        raise PipelineError(
            f"{folder}: ids and vocabulary disagree (windows.json says {spec.vocab_size} "
            f"characters, vocab.json has {len(vocabulary)}); {RERUN}"
        )
    lengths = {"train": spec.train_chars, "val": spec.val_chars, "test": spec.test_chars}
    arrays = []
    for split in SPLITS:
        path = folder / ids_file(split)
        ids = files.load_array(path)
        check_ids(path, ids, len(vocabulary), lengths[split])
        if len(ids) < spec.seq_len + 1:
            raise PipelineError(
                f"{path}: {len(ids)} ids, fewer than one window (seq_len + 1 = "
                f"{spec.seq_len + 1}); {RERUN}"
            )
        arrays.append(ids)
    train, val, test = arrays
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
