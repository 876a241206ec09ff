"""The pieces of the train stage: precision, data order, schedules, checkpoints, run status."""

import json
import math
import os
import signal
from pathlib import Path

import keras
import mlflow
import numpy as np
import pytest
import tensorflow as tf
from mlflow import MlflowClient

from pipeline import checkpoints, distribute, tracking
from pipeline.config import EncodeParams, TrainParams, load_params
from pipeline.data import (
    count_steps,
    shuffled_batches,
    training_dataset,
    validation_dataset,
)
from pipeline.encode import encode_corpus
from pipeline.encoded import EncodedData
from pipeline.errors import PipelineError
from pipeline.model import architecture_of, learning_rate
from pipeline.train import build_model, check_finite, choose_precision, history_csv

ROOT = Path(__file__).resolve().parents[1]
TEXT = "When shall we three meet again\nIn thunder, lightning, or in rain?\n" * 20


@pytest.fixture(scope="module")
def data() -> EncodedData:
    return EncodedData(*encode_corpus(TEXT, EncodeParams(seq_len=20, stride=10, val_fraction=0.2)))


@pytest.mark.parametrize(
    ("requested", "capabilities", "expected"),
    [
        ("auto", [], "float32"),  # CPU
        ("auto", [(9, 0)], "mixed_bfloat16"),  # H100
        ("auto", [(8, 0), (8, 6)], "mixed_bfloat16"),  # A100 + A40
        ("auto", [(7, 5)], "mixed_float16"),  # T4
        ("auto", [(8, 0), (7, 0)], "mixed_float16"),  # the oldest GPU decides
        ("auto", [(6, 1)], "float32"),  # GTX 1080: no tensor cores
        ("mixed_float16", [], "mixed_float16"),  # an explicit choice always wins
    ],
)
def test_choose_precision(requested, capabilities, expected):
    assert choose_precision(requested, capabilities) == expected


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


def test_sequence_training_batches(data):
    params = TrainParams(batch_size=4, steps_per_epoch=3)
    dataset, steps = training_dataset(data, params)
    assert steps == 3
    inputs, targets = next(iter(dataset))
    assert inputs.shape == targets.shape == (4, 20)
    assert inputs.dtype == tf.int32
    np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])  # next-character targets


def test_tutorial_training_batches(data):
    params = TrainParams(architecture="tutorial", batch_size=4)
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


def test_architecture_of_a_built_model(data):
    vocab = len(data.vocabulary)
    assert architecture_of(build_model(vocab, TrainParams(units=8, embedding_dim=4))) == "sequence"
    tutorial = build_model(vocab, TrainParams(architecture="tutorial", units=8, layers=1))
    assert architecture_of(tutorial) == "tutorial"


def test_learning_rate_schedules():
    assert learning_rate(TrainParams(lr_schedule="constant", learning_rate=0.01), 10) == 0.01
    cosine = learning_rate(TrainParams(learning_rate=0.01, epochs=2), 10)
    assert float(cosine(0)) == pytest.approx(0.01)
    assert float(cosine(20)) == pytest.approx(0.001)  # decays to a tenth over every step


def test_check_finite_names_the_metric_and_the_fix():
    check_finite({"loss": [3.0, 2.5], "val_loss": [3.1, 2.6]})
    with pytest.raises(
        PipelineError, match=r"training diverged: loss became nan at epoch 2; lower"
    ):
        check_finite({"loss": [3.0, math.nan]})


def test_history_csv_numbers_epochs_from_one():
    text = history_csv({"val_loss": [2.5, 2.25], "loss": [3.0, 2.0]})
    assert text == "epoch,loss,val_loss\n1,3.000000,2.500000\n2,2.000000,2.250000\n"


def test_clipping_uses_the_norm_of_the_summed_sparse_gradient():
    optimizer = keras.optimizers.Adam(clipnorm=1.0)
    # Character 0 seen twice in a batch: two rows of (3, 0), i.e. a dense row (6, 0).
    sparse = tf.IndexedSlices(
        tf.constant([[3.0, 0.0], [3.0, 0.0]]), tf.constant([0, 0]), tf.constant([2, 2])
    )
    distribute.clip_summed_gradients(optimizer)
    (clipped,) = optimizer._clip_gradients([sparse])
    np.testing.assert_allclose(clipped.numpy(), [[1.0, 0.0], [0.0, 0.0]], atol=1e-6)


def test_fingerprint_changes_with_anything_a_checkpoint_depends_on():
    base = checkpoints.fingerprint(TrainParams(), "float32", "data1")
    assert base == checkpoints.fingerprint(TrainParams(), "float32", "data1")
    assert base != checkpoints.fingerprint(TrainParams(units=128), "float32", "data1")
    assert base != checkpoints.fingerprint(TrainParams(), "mixed_float16", "data1")
    assert base != checkpoints.fingerprint(TrainParams(), "float32", "data2")


def tiny_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    outputs = keras.layers.Dense(1)(keras.layers.Dropout(0.5)(keras.layers.Dense(4)(inputs)))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return model


def test_a_checkpoint_restores_weights_optimizer_randomness_and_early_stopping(tmp_path):
    x = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    model = tiny_model()
    early = checkpoints.ResumableEarlyStopping(patience=5)
    state = checkpoints.EpochCheckpoint(
        tmp_path / "ckpt", early, "fp", checkpoints.SignalGuard(), run_id="run-1"
    )
    model.fit(
        x, y, validation_data=(x, y), epochs=2, batch_size=8, verbose=0, callbacks=[early, state]
    )
    found = checkpoints.find_checkpoint(tmp_path / "ckpt", "fp")
    assert found is not None
    assert (found.epoch, found.run_id, found.stopped) == (2, "run-1", False)
    assert found.history["val_loss"] == state.history["val_loss"]
    assert (tmp_path / ".gitignore").read_text().endswith("*\n")  # never committed

    fresh = tiny_model()
    best = checkpoints.restore_model_state(fresh, found)
    for saved, restored in zip(model.get_weights(), fresh.get_weights(), strict=True):
        np.testing.assert_array_equal(saved, restored)
    assert int(fresh.optimizer.iterations) == int(model.optimizer.iterations) == 8
    for saved, restored in zip(
        checkpoints.extra_variables(model), checkpoints.extra_variables(fresh), strict=True
    ):
        np.testing.assert_array_equal(saved.numpy(), restored.numpy())  # dropout seed state
    resumed = checkpoints.ResumableEarlyStopping(5, found.early_stopping, best)
    resumed.set_model(fresh)
    resumed.on_train_begin()
    assert (resumed.best, resumed.best_epoch, resumed.wait) == (
        pytest.approx(early.best),
        early.best_epoch,
        early.wait,
    )
    for saved, restored in zip(early.best_weights, resumed.best_weights, strict=True):
        np.testing.assert_array_equal(saved, restored)


def test_a_checkpoint_for_another_configuration_is_ignored(tmp_path, caplog):
    assert checkpoints.find_checkpoint(tmp_path / "missing", "fp") is None
    (tmp_path / "state.json").write_text(json.dumps({"fingerprint": "other"}))
    assert checkpoints.find_checkpoint(tmp_path, "fp") is None
    assert "other train params" in caplog.text


def test_a_signal_waits_for_the_checkpoint_write_to_finish():
    guard = checkpoints.SignalGuard()
    written = []
    with guard.installed(), pytest.raises(checkpoints.Interrupted, match="SIGTERM"):
        with guard.critical():
            os.kill(os.getpid(), signal.SIGTERM)
            written.append("checkpoint")  # still runs: the signal is held back
    assert written == ["checkpoint"]
    with checkpoints.SignalGuard().installed(), pytest.raises(KeyboardInterrupt, match="SIGINT"):
        os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers restored


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow")
    (folder / "data/encoded").mkdir(parents=True)
    (folder / "data/encoded/ids.npy").write_bytes(b"ids")
    previous = os.getcwd()
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.chdir(folder)
    # An explicit URI: an earlier test may have left another one set in mlflow's globals.
    yield MlflowClient(tracking_uri=uri)
    os.chdir(previous)
    del os.environ["MLFLOW_TRACKING_URI"]
    mlflow.set_tracking_uri(None)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (None, "FINISHED"),
        (KeyboardInterrupt, "KILLED"),
        (checkpoints.Interrupted(15), "KILLED"),
        (ValueError("boom"), "FAILED"),
    ],
)
def test_a_training_run_always_ends_with_a_true_status(mlflow_store, error, status):
    params = load_params(ROOT / "params.yaml")
    try:
        with tracking.training_run(params, {"device": "test"}) as run:
            if error is not None:
                raise error
    except (KeyboardInterrupt, ValueError):
        pass
    finished = mlflow_store.get_run(run.info.run_id)
    assert finished.info.status == status
    assert finished.data.tags["device"] == "test"
    assert mlflow.active_run() is None
