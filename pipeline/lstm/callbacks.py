"""Keras callbacks of the train stage: what a person watching training sees, and what MLflow gets.

`TrainingProgress` draws one progress bar over every step of the whole run (not per epoch), with
its ETA, on a terminal; elsewhere (a log file, CI, `dvc exp run --queue`) it logs one line per
epoch with the losses, the elapsed time and the ETA. `EpochMetrics` logs only per-epoch `loss` and
`val_loss` to MLflow (step = epoch number): Keras' own MLflow callback also logs a duplicate
`validation_loss` at step 0 and every optimizer setting, which crowd the comparison pages.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from typing import Any, TextIO

import keras
from tqdm import tqdm

from pipeline.tracking import runs as tracking

log = logging.getLogger(__name__)


def format_duration(seconds: float) -> str:
    """`75` -> `1m15s`, `3725` -> `1h02m05s`."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def eta_seconds(elapsed: float, steps_done: int, steps_total: int) -> float:
    """Time left at the mean pace so far (an upper bound: early stopping may end sooner)."""
    if steps_done <= 0:
        return float("nan")
    return elapsed / steps_done * max(steps_total - steps_done, 0)


class TrainingProgress(keras.callbacks.Callback):
    """A progress bar over `epochs x steps` from `first_epoch` on, or one log line per epoch."""

    def __init__(
        self, epochs: int, steps_per_epoch: int, first_epoch: int = 0, stream: TextIO | None = None
    ) -> None:
        super().__init__()
        self.epochs = epochs
        self.steps_total = max(epochs - first_epoch, 0) * steps_per_epoch
        self.stream = stream or sys.stderr
        self.bar: tqdm[Any] | None = None
        self.steps_done = 0
        self.started = 0.0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.started = time.monotonic()
        if self.stream.isatty():
            self.bar = tqdm(
                total=self.steps_total, unit="step", file=self.stream, dynamic_ncols=True
            )

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.steps_done += 1
        if self.bar is not None:
            self.bar.update(1)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.bar is not None:
            self.bar.set_description(f"epoch {epoch + 1}/{self.epochs}")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        losses = {k: float(v) for k, v in (logs or {}).items() if k in tracking.EPOCH_METRICS}
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4f}" for k, v in losses.items()}, refresh=True)
            return
        elapsed = time.monotonic() - self.started
        left = eta_seconds(elapsed, self.steps_done, self.steps_total)
        log.info(
            "epoch %d/%d: %s; %s elapsed, at most %s left",
            epoch + 1,
            self.epochs,
            ", ".join(f"{k} {v:.4f}" for k, v in losses.items()),
            format_duration(elapsed),
            format_duration(left) if math.isfinite(left) else "?",
        )

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class EpochMetrics(keras.callbacks.Callback):
    """Log each finished epoch's `loss` and `val_loss` to the active MLflow run."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        tracking.log_epoch(epoch + 1, logs or {})


class StatefulValidation(keras.callbacks.Callback):
    """For `train.stateful`: start every epoch's lanes from a zero state, and after each epoch
    score the validation pass on `scorer` (the plain model, given the trained weights), since the
    stateful model takes batches of one size only and would carry its state into validation.
    It puts `val_loss` into the epoch's logs, so it must come before the callbacks that read it.
    """

    def __init__(self, scorer: keras.Model, validation: Any) -> None:
        super().__init__()
        self.scorer = scorer
        self.validation = validation

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        for layer in self.model.layers:
            if getattr(layer, "stateful", False):
                layer.reset_state()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.scorer.set_weights(self.model.get_weights())
        if logs is not None:
            logs["val_loss"] = float(self.scorer.evaluate(self.validation, verbose=0))
