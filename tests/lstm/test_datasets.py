"""pipeline/lstm/datasets.py: step counts, the seeded per-epoch order, the batches each dataset
yields."""

import numpy as np
import pytest
import tensorflow as tf

from pipeline.core.config import EncodeParams, TrainParams
from pipeline.core.errors import PipelineError
from pipeline.corpus.encoded import EncodedData
from pipeline.encode import encode_corpus
from pipeline.lstm.datasets import (
    count_steps,
    lane_batches,
    shuffled_batches,
    training_dataset,
    training_steps,
    validation_dataset,
)
from tests.support.params import committed

TEXT = "When shall we three meet again\nIn thunder, lightning, or in rain?\n" * 20


@pytest.fixture(scope="module")
def data() -> EncodedData:
    return EncodedData(
        *encode_corpus(TEXT, committed(EncodeParams, seq_len=20, stride=10, val_fraction=0.2))
    )


def test_count_steps_caps_and_never_returns_zero():
    assert count_steps(100, 8) == 12
    assert count_steps(100, 8, steps_per_epoch=5) == 5
    assert count_steps(100, 8, steps_per_epoch=50) == 12
    assert count_steps(3, 8) == 1  # a corpus smaller than one batch still trains


def epochs_of(stream: tf.data.Dataset, epochs: int, steps: int) -> list[list[list[int]]]:
    batches = [batch.numpy().tolist() for batch in stream.take(epochs * steps)]
    return [batches[e * steps : (e + 1) * steps] for e in range(epochs)]


def test_each_epoch_is_a_seeded_permutation_so_a_resumed_stream_matches():
    starts = np.arange(0, 40, dtype=np.int64)
    from_start = epochs_of(
        shuffled_batches(starts, 8, seed=1, first_epoch=0, steps_per_epoch=5), 3, 5
    )
    resumed = epochs_of(shuffled_batches(starts, 8, seed=1, first_epoch=1, steps_per_epoch=5), 2, 5)
    assert resumed == from_start[1:]
    for epoch in from_start:
        assert sorted(sum(epoch, [])) == list(range(40))  # every window once per epoch
    assert from_start[0] != from_start[1]  # reshuffled each epoch
    other_seed = epochs_of(
        shuffled_batches(starts, 8, seed=2, first_epoch=0, steps_per_epoch=5), 1, 5
    )
    assert other_seed[0] != from_start[0]


def test_steps_per_epoch_takes_the_start_of_each_epochs_permutation():
    starts = np.arange(0, 40, dtype=np.int64)
    full = epochs_of(shuffled_batches(starts, 8, seed=1, first_epoch=0, steps_per_epoch=5), 2, 5)
    capped = epochs_of(shuffled_batches(starts, 8, seed=1, first_epoch=0, steps_per_epoch=2), 2, 2)
    assert capped == [epoch[:2] for epoch in full]


@pytest.mark.parametrize("architecture", ["sequence", "tutorial"])
@pytest.mark.parametrize("steps_per_epoch", [0, 3])
def test_training_steps_counts_batches_without_building_the_stream(
    data, architecture, steps_per_epoch
):
    params = committed(
        TrainParams, architecture=architecture, batch_size=4, steps_per_epoch=steps_per_epoch
    )
    length = len(data.train_ids)
    # tutorial: stride-1 windows of 50 + 1; sequence: windows of seq_len 20 + 1 every 10
    windows = length - 50 if architecture == "tutorial" else (length - 21) // 10 + 1
    expected = min(windows // 4, steps_per_epoch) if steps_per_epoch else windows // 4
    assert training_steps(data, params) == expected
    assert training_dataset(data, params)[1] == expected


def test_sequence_training_batches(data):
    params = committed(TrainParams, batch_size=4, steps_per_epoch=3)
    dataset, steps = training_dataset(data, params)
    assert steps == 3
    inputs, targets = next(iter(dataset))
    assert inputs.shape == targets.shape == (4, 20)
    assert inputs.dtype == tf.int32
    np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])  # next-character targets


def test_stateful_lanes_continue_row_by_row_and_a_resumed_stream_matches(data):
    params = committed(TrainParams, stateful=True, batch_size=4)
    length = len(data.train_ids)
    lane = (length - 20) // 4
    _, steps = training_dataset(data, params)
    assert steps == training_steps(data, params) == lane // 20
    stream = training_dataset(data, params)[0].take(3 * steps)
    batches = [(inputs.numpy(), targets.numpy()) for inputs, targets in stream]
    for inputs, targets in batches:
        np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])
    for epoch in range(3):
        one_epoch = batches[epoch * steps : (epoch + 1) * steps]
        for (_, targets), (following, _) in zip(one_epoch[:-1], one_epoch[1:], strict=True):
            np.testing.assert_array_equal(targets[:, -1], following[:, 0])  # row i goes on
    lane_starts = list(lane_batches(length, 20, 4, 42, 0).take(10 * steps).as_numpy_iterator())
    offsets = {int(lane_starts[p * steps][0]) for p in range(10)}  # the first row of each pass
    assert offsets <= set(range(20)) and len(offsets) > 1  # a new offset per pass
    resumed = [inputs.numpy() for inputs, _ in training_dataset(data, params, 1)[0].take(steps)]
    np.testing.assert_array_equal(
        np.stack(resumed), np.stack([b[0] for b in batches[steps : 2 * steps]])
    )


def test_stateful_refuses_a_text_too_short_for_its_lanes(data):
    with pytest.raises(PipelineError, match="lower train.batch_size or set train.stateful: false"):
        training_steps(data, committed(TrainParams, stateful=True, batch_size=64))


def test_tutorial_training_batches(data):
    params = committed(TrainParams, architecture="tutorial", batch_size=4)
    dataset, steps = training_dataset(data, params)
    assert steps == (len(data.train_ids) - 50) // 4  # stride-1 windows
    inputs, targets = next(iter(dataset))
    assert inputs.shape == (4, 50, 1)
    assert inputs.dtype == tf.float32
    assert float(tf.reduce_max(inputs)) < 1.0  # ids scaled by the vocabulary size
    assert targets.shape == (4,)


@pytest.mark.parametrize("architecture", ["sequence", "tutorial"])
def test_validation_scores_every_held_out_window_once(data, architecture):
    batches = list(validation_dataset(data, architecture, batch_size=7))
    windows = sum(int(inputs.shape[0]) for inputs, _ in batches)
    if architecture == "sequence":
        assert windows == data.spec.val_windows
    else:
        assert windows == len(data.val_ids) - 50
