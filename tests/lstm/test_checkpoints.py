"""pipeline/lstm/checkpoints.py: what a checkpoint depends on, what it restores, and signals held
back while it is written."""

import json
import os
import signal

import keras
import numpy as np
import pytest

from pipeline.core.config import TrainParams
from pipeline.lstm import checkpoints, early_stopping, signals


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
    early = early_stopping.ResumableEarlyStopping(patience=5)
    state = checkpoints.EpochCheckpoint(
        tmp_path / "ckpt", early, "fp", signals.SignalGuard(), run_id="run-1"
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
    resumed = early_stopping.ResumableEarlyStopping(5, found.early_stopping, best)
    resumed.set_model(fresh)
    resumed.on_train_begin()
    assert (resumed.best, resumed.best_epoch, resumed.wait) == (
        pytest.approx(early.best),
        early.best_epoch,
        early.wait,
    )
    for saved, restored in zip(early.best_weights, resumed.best_weights, strict=True):
        np.testing.assert_array_equal(saved, restored)


def test_averaging_restores_the_mean_from_the_best_epoch_on_and_survives_a_restart(tmp_path):
    """Validation losses 3, 2, 2.5, 2.4: the best is epoch 2, so the restored weights are the
    mean of epochs 2 to 4, the same whether or not training was killed after epoch 3."""
    rng = np.random.default_rng(1)
    model = tiny_model()
    epoch_weights = [
        [rng.normal(size=w.shape).astype("float32") for w in model.get_weights()] for _ in range(4)
    ]
    losses = [3.0, 2.0, 2.5, 2.4]

    def train(model, callbacks, epochs):
        for epoch in epochs:
            model.set_weights(epoch_weights[epoch])
            for callback in callbacks:
                callback.on_epoch_end(epoch, {"loss": 1.0, "val_loss": losses[epoch]})

    early = early_stopping.ResumableEarlyStopping(patience=9, average=True)
    early.set_model(model)
    early.on_train_begin()
    train(model, [early], range(4))
    early.on_train_end()
    for index, restored in enumerate(model.get_weights()):
        expected = np.mean([weights[index] for weights in epoch_weights[1:]], axis=0)
        np.testing.assert_allclose(restored, expected, rtol=1e-5, atol=1e-6)

    killed = tiny_model()
    early = early_stopping.ResumableEarlyStopping(patience=9, average=True)
    state = checkpoints.EpochCheckpoint(tmp_path / "ckpt", early, "fp", signals.SignalGuard())
    for callback in (early, state):
        callback.set_model(killed)
    early.on_train_begin()
    train(killed, [early, state], range(3))
    found = checkpoints.find_checkpoint(tmp_path / "ckpt", "fp")
    assert found is not None
    assert found.early_stopping["averaged_epochs"] == 2  # epochs 2 and 3 so far
    resumed_model = tiny_model()
    best = checkpoints.restore_model_state(resumed_model, found)
    resumed = early_stopping.ResumableEarlyStopping(9, found.early_stopping, best, average=True)
    resumed.set_model(resumed_model)
    resumed.on_train_begin()
    train(resumed_model, [resumed], range(3, 4))
    resumed.on_train_end()
    for uninterrupted, restarted in zip(
        model.get_weights(), resumed_model.get_weights(), strict=True
    ):
        np.testing.assert_array_equal(uninterrupted, restarted)


def test_without_averaging_the_best_epochs_weights_are_restored():
    model = tiny_model()
    early = early_stopping.ResumableEarlyStopping(patience=9)
    early.set_model(model)
    early.on_train_begin()
    best = None
    for epoch, loss in enumerate([3.0, 2.0, 2.5]):
        model.set_weights([w + 1 for w in model.get_weights()])
        best = model.get_weights() if epoch == 1 else best
        early.on_epoch_end(epoch, {"val_loss": loss})
    early.on_train_end()
    for restored, expected in zip(model.get_weights(), best, strict=True):
        np.testing.assert_array_equal(restored, expected)


def test_a_checkpoint_for_another_configuration_is_ignored(tmp_path, caplog):
    assert checkpoints.find_checkpoint(tmp_path / "missing", "fp") is None
    (tmp_path / "state.json").write_text(json.dumps({"fingerprint": "other"}))
    assert checkpoints.find_checkpoint(tmp_path, "fp") is None
    assert "other train params" in caplog.text


def test_a_signal_waits_for_the_checkpoint_write_to_finish():
    guard = signals.SignalGuard()
    written = []
    with guard.installed(), pytest.raises(signals.Interrupted, match="SIGTERM"):
        with guard.critical():
            os.kill(os.getpid(), signal.SIGTERM)
            written.append("checkpoint")  # still runs: the signal is held back
    assert written == ["checkpoint"]
    with signals.SignalGuard().installed(), pytest.raises(KeyboardInterrupt, match="SIGINT"):
        os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers restored


def test_removing_a_checkpoint_that_is_not_there_is_fine(tmp_path):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "state.json").write_text("{}")
    checkpoints.remove_checkpoint(tmp_path / "ckpt")
    assert not (tmp_path / "ckpt").exists()
    checkpoints.remove_checkpoint(tmp_path / "ckpt")  # already gone: nothing to do
