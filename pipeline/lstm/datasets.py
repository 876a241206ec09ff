"""Encoded data on disk -> streaming `tf.data` pipelines for training and evaluation.

Windows are cut on the fly: each batch gathers `span` ids per window start from the id array held
once in memory, so no window, and no one-hot tensor, is ever materialised up front.

Training order is a pure function of `(seed, epoch)`: epoch `e` visits the window starts in the
permutation `stateless_shuffle(starts, seed=(seed, e))`. A run resumed at epoch `e` therefore
sees exactly the batches an uninterrupted run would have seen from epoch `e` on.

`train.stateful` trains on parallel streams instead (truncated backpropagation through time):
the training text is cut into `batch_size` contiguous lanes, and batch `k` holds the `k`-th
`seq_len` characters of every lane, so row `i` of each batch continues row `i` of the one before
and the LSTM state can be carried across. Each pass over the text starts the lanes at a seeded
random offset below `seq_len`; the stream is again a pure function of `(seed, batch index)`.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from pipeline.core.config import TrainParams
from pipeline.core.errors import PipelineError
from pipeline.corpus.encoded import EncodedData
from pipeline.corpus.windows import count_windows, window_starts

TUTORIAL_WINDOW = 50  # the tutorial's window length, fixed by its formulation


def count_steps(windows: int, batch_size: int, steps_per_epoch: int = 0) -> int:
    """Full batches in one pass over `windows` (at least 1), capped by `steps_per_epoch` if > 0."""
    steps = max(1, windows // batch_size)
    return min(steps, steps_per_epoch) if steps_per_epoch else steps


def is_stateful(params: TrainParams) -> bool:
    """Whether training carries the LSTM state across batches (the sequence model only)."""
    return params.stateful and params.architecture == "sequence"


def lane_length(length: int, seq_len: int, batch_size: int) -> int:
    """Characters per lane of the stateful stream: the same for every pass, whatever its offset."""
    lane = (length - seq_len) // batch_size
    if lane < seq_len:
        raise PipelineError(
            f"train.stateful: {length} training characters do not fill {batch_size} lanes of "
            f"{seq_len} characters; lower train.batch_size or set train.stateful: false"
        )
    return lane


def training_steps(data: EncodedData, params: TrainParams) -> int:
    """Training batches per epoch for `params.architecture`, without building the stream."""
    if params.architecture == "tutorial":
        windows = count_windows(len(data.train_ids), TUTORIAL_WINDOW, 1)
    elif is_stateful(params):
        seq_len = data.spec.seq_len
        passes = lane_length(len(data.train_ids), seq_len, params.batch_size) // seq_len
        return min(passes, params.steps_per_epoch) if params.steps_per_epoch else passes
    else:
        windows = count_windows(len(data.train_ids), data.spec.seq_len, data.spec.stride)
    return count_steps(windows, params.batch_size, params.steps_per_epoch)


def shuffled_batches(
    starts: np.ndarray, batch_size: int, seed: int, first_epoch: int, steps_per_epoch: int
) -> tf.data.Dataset:
    """An endless stream of `(batch,)` start offsets: `steps_per_epoch` batches per epoch.

    Epoch `e` takes the first batches of its own seeded permutation, so the stream that starts
    at `first_epoch` equals the tail of the stream that starts at 0.
    """
    starts_tensor = tf.constant(starts)
    drop_remainder = len(starts) >= batch_size  # a tiny corpus still gives one (short) batch

    def epoch_batches(epoch: tf.Tensor) -> tf.data.Dataset:
        order = tf.random.experimental.stateless_shuffle(
            starts_tensor, seed=tf.stack([tf.constant(seed, tf.int64), epoch])
        )
        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size, drop_remainder)
        return batches.take(steps_per_epoch)

    return tf.data.Dataset.counter(first_epoch).flat_map(epoch_batches)


def lane_batches(
    length: int, seq_len: int, batch_size: int, seed: int, first_batch: int
) -> tf.data.Dataset:
    """An endless stream of `(batch,)` start offsets for stateful training, from batch
    `first_batch` on: row `i` of batch `k` of a pass starts at `offset + i * lane + k * seq_len`,
    with `offset` drawn below `seq_len` per pass from `(seed, pass)`."""
    lane = lane_length(length, seq_len, batch_size)
    per_pass = lane // seq_len
    lanes = tf.range(batch_size, dtype=tf.int64) * lane

    def starts(index: tf.Tensor) -> tf.Tensor:
        offset = tf.random.stateless_uniform(
            [],
            seed=tf.stack([tf.constant(seed, tf.int64), index // per_pass]),
            maxval=seq_len,
            dtype=tf.int64,
        )
        return offset + lanes + (index % per_pass) * seq_len

    return tf.data.Dataset.counter(first_batch).map(starts)


def _gather_windows(ids: np.ndarray, start_batches: tf.data.Dataset, span: int) -> tf.data.Dataset:
    """Batches of `(batch, span)` int32 windows `ids[s : s + span]`, one per start offset."""
    ids_tensor = tf.constant(ids)  # stays uint8: 1 byte per character
    offsets = tf.range(span, dtype=tf.int64)

    def gather(batch_starts: tf.Tensor) -> tf.Tensor:
        windows = tf.gather(ids_tensor, batch_starts[:, None] + offsets[None, :])
        return tf.cast(windows, tf.int32)  # (batch, span)

    return start_batches.map(gather, num_parallel_calls=tf.data.AUTOTUNE)


def _window_batches(  # noqa: PLR0913, PLR0917 (the stream's settings, passed through)
    ids: np.ndarray,
    starts: np.ndarray,
    span: int,
    batch_size: int,
    shuffle: bool,
    seed: int,
    first_epoch: int,
    steps_per_epoch: int,
) -> tf.data.Dataset:
    if len(starts) == 0:
        raise PipelineError(f"no window of {span} characters fits in {len(ids)} characters")
    if shuffle:
        steps = count_steps(len(starts), batch_size, steps_per_epoch)
        start_batches = shuffled_batches(starts, batch_size, seed, first_epoch, steps)
    else:  # one ordered pass, last batch possibly short: every window counts exactly once
        start_batches = tf.data.Dataset.from_tensor_slices(starts).batch(batch_size)
    return _gather_windows(ids, start_batches, span)


def sequence_dataset(  # noqa: PLR0913 (shuffling options are keywords)
    ids: np.ndarray,
    seq_len: int,
    stride: int,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    first_epoch: int = 0,
    steps_per_epoch: int = 0,
) -> tf.data.Dataset:
    """`(inputs, targets)` of shape `(batch, seq_len)`: targets are inputs shifted by one.

    `shuffle=True` gives the endless training stream (see `shuffled_batches`); `False` one
    ordered pass for validation.
    """
    starts = window_starts(len(ids), seq_len, stride)
    windows = _window_batches(
        ids, starts, seq_len + 1, batch_size, shuffle, seed, first_epoch, steps_per_epoch
    )
    return shifted_pairs(windows)


def shifted_pairs(windows: tf.data.Dataset) -> tf.data.Dataset:
    """`(inputs, targets)` from batches of `seq_len + 1` windows: the targets shifted by one."""
    return windows.map(lambda w: (w[:, :-1], w[:, 1:])).prefetch(tf.data.AUTOTUNE)


def tutorial_dataset(  # noqa: PLR0913 (shuffling options are keywords)
    ids: np.ndarray,
    vocab_size: int,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    stride: int = 1,
    first_epoch: int = 0,
    steps_per_epoch: int = 0,
) -> tf.data.Dataset:
    """The tutorial's formulation: 50 ids scaled to floats `(batch, 50, 1)` -> the next id."""
    starts = window_starts(len(ids), TUTORIAL_WINDOW, stride)
    windows = _window_batches(
        ids, starts, TUTORIAL_WINDOW + 1, batch_size, shuffle, seed, first_epoch, steps_per_epoch
    )

    def split(w: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        inputs = tf.cast(w[:, :-1, None], tf.float32) / float(vocab_size)
        return inputs, w[:, -1]

    return windows.map(split).prefetch(tf.data.AUTOTUNE)


def training_dataset(
    data: EncodedData, params: TrainParams, first_epoch: int = 0
) -> tuple[tf.data.Dataset, int]:
    """The endless training stream for `params.architecture`, and its steps per epoch."""
    batch, seed, steps = params.batch_size, params.seed, params.steps_per_epoch
    if params.architecture == "tutorial":
        dataset = tutorial_dataset(
            data.train_ids,
            len(data.vocabulary),
            batch,
            shuffle=True,
            seed=seed,
            first_epoch=first_epoch,
            steps_per_epoch=steps,
        )
    elif is_stateful(params):
        seq_len = data.spec.seq_len
        steps = training_steps(data, params)
        starts = lane_batches(len(data.train_ids), seq_len, batch, seed, first_epoch * steps)
        dataset = shifted_pairs(_gather_windows(data.train_ids, starts, seq_len + 1))
    else:
        seq_len, stride = data.spec.seq_len, data.spec.stride
        dataset = sequence_dataset(
            data.train_ids,
            seq_len,
            stride,
            batch,
            shuffle=True,
            seed=seed,
            first_epoch=first_epoch,
            steps_per_epoch=steps,
        )
    return dataset, training_steps(data, params)


def windowed_dataset(
    ids: np.ndarray, data: EncodedData, architecture: str, batch_size: int
) -> tf.data.Dataset:
    """One ordered pass over held-out `ids` (validation or test), shaped for `architecture`:
    the windowed protocol.

    Train's validation loss and evaluate's windowed bits per character both use this, so they
    measure the same thing: `sequence` scores every character of non-overlapping `seq_len`
    windows, each window starting from a fresh state; `tutorial` scores every character from
    position 50 on, each after its 50 predecessors.
    """
    if architecture == "tutorial":
        return tutorial_dataset(ids, len(data.vocabulary), batch_size, shuffle=False)
    seq_len = data.spec.seq_len
    return sequence_dataset(ids, seq_len, seq_len, batch_size, shuffle=False)


def validation_dataset(data: EncodedData, architecture: str, batch_size: int) -> tf.data.Dataset:
    """The validation text in the windowed protocol: what early stopping watches."""
    return windowed_dataset(data.val_ids, data, architecture, batch_size)
