"""Early stopping that survives a restart: its counters and best weights are saved with each
checkpoint, and optionally the weights from the best epoch to the last are averaged."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """`EarlyStopping` on `val_loss` whose counters and restored weights survive a restart.

    With `average` the weights restored at the end are not the best epoch's alone but the mean of
    the epoch-end weights from the best epoch to the last one trained (the epochs early stopping
    waited through): a cheap checkpoint average, which scores better on held-out text than any
    one of them when training has begun to overfit. `best_weights` holds that running mean and
    `averaged_epochs` how many epochs are in it."""

    def __init__(
        self,
        patience: int,
        resume_state: dict[str, Any] | None = None,
        best_weights: list[np.ndarray] | None = None,
        average: bool = False,
    ) -> None:
        super().__init__(monitor="val_loss", patience=patience, restore_best_weights=True)
        self.average = average
        self.averaged_epochs = 0
        self._resume_state = resume_state
        self._resume_weights = best_weights

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)
        self.averaged_epochs = 0
        if self._resume_state:
            self.wait = self._resume_state["wait"]
            self.best = self._resume_state["best"]
            self.best_epoch = self._resume_state["best_epoch"]
            self.averaged_epochs = self._resume_state["averaged_epochs"]
            self.best_weights = self._resume_weights

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        super().on_epoch_end(epoch, logs)
        if not self.average or self.best_weights is None:
            return
        if self.best_epoch == epoch:  # a new best (its weights just taken): the mean restarts
            self.averaged_epochs = 1
            return
        self.averaged_epochs += 1
        self.best_weights = [
            mean + (weights - mean) / self.averaged_epochs
            for mean, weights in zip(self.best_weights, self.model.get_weights(), strict=True)
        ]

    def state(self) -> dict[str, Any]:
        best = None if self.best is None else float(self.best)
        return {
            "wait": int(self.wait),
            "best": best,
            "best_epoch": int(self.best_epoch),
            "averaged_epochs": self.averaged_epochs,
        }
