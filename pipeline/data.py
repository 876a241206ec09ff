"""Encoded data on disk -> streaming `tf.data` pipelines for training and evaluation.

Windows are cut on the fly: each batch gathers `seq_len + 1` ids per window start from the id
array held once in memory, so no window, and no one-hot tensor, is ever materialised up front.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from pipeline import files
from pipeline.config import ENCODED_DIR
from pipeline.encode import WindowSpec, window_starts
from pipeline.errors import PipelineError

TUTORIAL_WINDOW = 50  # the tutorial's window length, fixed by its formulation


@dataclass(frozen=True)
class EncodedData:
    vocabulary: list[str]
    train_ids: np.ndarray
    val_ids: np.ndarray
    spec: WindowSpec


def load_encoded(folder: Path = ENCODED_DIR) -> EncodedData:
    vocabulary = files.read_json(folder / "vocab.json")["chars"]
    spec = WindowSpec(**files.read_json(folder / "windows.json"))
    train_ids = files.load_array(folder / "train_ids.npy")
    val_ids = files.load_array(folder / "val_ids.npy")
    if len(vocabulary) != spec.vocab_size or int(max(train_ids.max(), val_ids.max())) >= len(
        vocabulary
    ):
        raise PipelineError(f"{folder}: ids and vocabulary disagree; re-run `dvc repro encode`")
    return EncodedData(vocabulary, train_ids, val_ids, spec)


def _gather_windows(
    ids: np.ndarray, starts: np.ndarray, span: int, batch_size: int, shuffle: bool, seed: int,
    drop_remainder: bool,
) -> tf.data.Dataset:
    """Batches of `(batch, span)` int32 windows `ids[s : s + span]`, one per start offset."""
    if len(starts) == 0:
        raise PipelineError(f"no window of {span} characters fits in {len(ids)} characters")
    ids_tensor = tf.constant(ids)  # stays uint8: 1 byte per character
    offsets = tf.range(span, dtype=tf.int64)
    dataset = tf.data.Dataset.from_tensor_slices(starts)
    if shuffle:
        dataset = dataset.shuffle(len(starts), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder and len(starts) >= batch_size)

    def gather(batch_starts: tf.Tensor) -> tf.Tensor:
        windows = tf.gather(ids_tensor, batch_starts[:, None] + offsets[None, :])
        return tf.cast(windows, tf.int32)  # (batch, span)

    return dataset.map(gather, num_parallel_calls=tf.data.AUTOTUNE)


def sequence_dataset(
    ids: np.ndarray, seq_len: int, stride: int, batch_size: int, *, shuffle: bool, seed: int = 0
) -> tf.data.Dataset:
    """`(inputs, targets)` of shape `(batch, seq_len)`: targets are inputs shifted by one."""
    starts = window_starts(len(ids), seq_len, stride)
    windows = _gather_windows(ids, starts, seq_len + 1, batch_size, shuffle, seed, shuffle)
    return windows.map(lambda w: (w[:, :-1], w[:, 1:])).prefetch(tf.data.AUTOTUNE)


def tutorial_dataset(
    ids: np.ndarray, vocab_size: int, batch_size: int, *, shuffle: bool, seed: int = 0,
    stride: int = 1,
) -> tf.data.Dataset:
    """The tutorial's formulation: 50 ids scaled to floats `(batch, 50, 1)` -> the next id."""
    starts = window_starts(len(ids), TUTORIAL_WINDOW, stride)
    windows = _gather_windows(ids, starts, TUTORIAL_WINDOW + 1, batch_size, shuffle, seed, shuffle)

    def split(w: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        inputs = tf.cast(w[:, :-1, None], tf.float32) / float(vocab_size)
        return inputs, w[:, -1]

    return windows.map(split).prefetch(tf.data.AUTOTUNE)
