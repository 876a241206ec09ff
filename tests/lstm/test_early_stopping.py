"""pipeline/lstm/early_stopping.py: the weights restored at the end, averaged or the best epoch's,
across a restart."""

import numpy as np

from pipeline.lstm import checkpoints, early_stopping, signals
from tests.support.training import tiny_model


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
