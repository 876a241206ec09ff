"""pipeline/lstm/checkpoints.py: what a checkpoint depends on, what it restores, and signals held
back while it is written."""

import json

import numpy as np
import pytest

from pipeline.core.config import TrainParams
from pipeline.lstm import checkpoints, early_stopping, signals
from tests.support.params import committed
from tests.support.training import tiny_model


def test_fingerprint_changes_with_anything_a_checkpoint_depends_on():
    base = checkpoints.fingerprint(committed(TrainParams), "float32", "data1")
    assert base == checkpoints.fingerprint(committed(TrainParams), "float32", "data1")
    assert base != checkpoints.fingerprint(committed(TrainParams, units=128), "float32", "data1")
    assert base != checkpoints.fingerprint(committed(TrainParams), "mixed_float16", "data1")
    assert base != checkpoints.fingerprint(committed(TrainParams), "float32", "data2")


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


def test_a_checkpoint_for_another_configuration_is_ignored(tmp_path, caplog):
    assert checkpoints.find_checkpoint(tmp_path / "missing", "fp") is None
    (tmp_path / "state.json").write_text(json.dumps({"fingerprint": "other"}))
    assert checkpoints.find_checkpoint(tmp_path, "fp") is None
    assert "other train params" in caplog.text


def test_removing_a_checkpoint_that_is_not_there_is_fine(tmp_path):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "state.json").write_text("{}")
    checkpoints.remove_checkpoint(tmp_path / "ckpt")
    assert not (tmp_path / "ckpt").exists()
    checkpoints.remove_checkpoint(tmp_path / "ckpt")  # already gone: nothing to do
