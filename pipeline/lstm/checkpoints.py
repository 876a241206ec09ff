"""Resumable training: an end-of-epoch checkpoint, restored by the next run of the same config.

After every epoch the train stage replaces `models/.checkpoints/train/` as a whole (written to a
temporary folder, then renamed) with:
- `state.weights.h5`: model weights plus optimiser state (Adam moments and step counter, so the
  learning-rate schedule continues where it stopped);
- `best_weights.npz`: the weights early stopping will restore (the best epoch's so far, or with
  `train.average_from_best` their mean with every later epoch's);
- `random_state.npz`: the dropout seed-generator states, so a resumed run draws the same masks;
- `state.json`: epochs done, the per-epoch history, early stopping's counters, the MLflow run id
  and a fingerprint of everything the checkpoint depends on.

A checkpoint whose fingerprint differs (other `train` params, precision or encoded data) is
ignored. The folder lies outside DVC's declared outputs, so DVC does not delete it before
re-running the stage; it ignores itself in git; a successful run removes it. Delete it by hand
(`rm -r models/.checkpoints`) to start an interrupted configuration from scratch.

Keras's own `BackupAndRestore` does the core of this, but writes its two files in place (a kill
between them leaves a mismatched pair), forgets early stopping's state and cannot check that a
backup belongs to the current config; hence this small module.

A SIGTERM or SIGINT becomes an `Interrupted` exception (a `KeyboardInterrupt`), except while a
checkpoint is being written: then it waits until the write has finished.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from pipeline.core import files
from pipeline.core.config import TrainParams
from pipeline.lstm.early_stopping import ResumableEarlyStopping
from pipeline.lstm.model import save_weights
from pipeline.lstm.signals import SignalGuard

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
WEIGHTS_FILE = "state.weights.h5"
BEST_FILE = "best_weights.npz"
RANDOM_FILE = "random_state.npz"


@dataclass(frozen=True)
class Checkpoint:
    folder: Path
    epoch: int  # epochs completed; training continues with epoch `epoch + 1`
    history: dict[str, list[float]]
    early_stopping: dict[str, Any]
    run_id: str | None
    stopped: bool  # early stopping had already ended training


def fingerprint(params: TrainParams, precision: str, data_hash: str) -> str:
    """Hash of what a checkpoint is only valid for: every `train` param, precision and data."""
    payload = json.dumps([params.model_dump(), precision, data_hash], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def find_checkpoint(folder: Path, expected_fingerprint: str) -> Checkpoint | None:
    """The checkpoint in `folder` if there is one for this configuration, else None."""
    try:
        state = files.read_json(folder / STATE_FILE)
    except FileNotFoundError:
        return None
    if state.get("fingerprint") != expected_fingerprint:
        log.warning("ignoring %s: it was written for other train params, precision or data", folder)
        return None
    return Checkpoint(
        folder,
        state["epoch"],
        state["history"],
        state["early_stopping"],
        state.get("run_id"),
        state["stopped"],
    )


def remove_checkpoint(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def extra_variables(model: keras.Model) -> list[keras.Variable]:
    """Model state that `save_weights` leaves out: the seed generators of the dropout layers."""
    weights = {id(weight) for weight in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


def restore_model_state(model: keras.Model, checkpoint: Checkpoint) -> list[np.ndarray] | None:
    """Load weights, optimiser and random state into `model`; return the best weights, if any."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(checkpoint.folder / WEIGHTS_FILE)
    with np.load(checkpoint.folder / RANDOM_FILE, allow_pickle=False) as arrays:
        for index, variable in enumerate(extra_variables(model)):
            variable.assign(arrays[f"arr_{index}"])
    best = checkpoint.folder / BEST_FILE
    if not best.exists():
        return None
    with np.load(best, allow_pickle=False) as arrays:
        return [arrays[f"arr_{index}"] for index in range(len(arrays.files))]


class EpochCheckpoint(keras.callbacks.Callback):
    """Records the history and writes the checkpoint folder after every finite epoch."""

    def __init__(  # noqa: PLR0913, PLR0917 (a Keras callback: its state, given at once)
        self,
        folder: Path,
        early_stopping: ResumableEarlyStopping,
        fingerprint: str,
        guard: SignalGuard,
        run_id: str | None = None,
        history: dict[str, list[float]] | None = None,
    ) -> None:
        super().__init__()
        self.folder = folder
        self.early_stopping = early_stopping
        self.fingerprint = fingerprint
        self.guard = guard
        self.run_id = run_id
        self.history = {key: list(values) for key, values in (history or {}).items()}

    @property
    def epochs_done(self) -> int:
        return len(self.history.get("loss", []))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        if not all(math.isfinite(values[-1]) for values in self.history.values()):
            return  # never checkpoint a diverged model; `check_finite` reports it
        with self.guard.critical():
            # the weights to restore change at a new best, and at every epoch while averaging
            changed = self.early_stopping.best_epoch == epoch or self.early_stopping.average
            self._write(restored_changed=changed)

    def _write(self, restored_changed: bool) -> None:
        previous_best = self.folder / BEST_FILE
        with files.atomic_directory(self.folder) as temporary:
            save_weights(self.model, temporary / WEIGHTS_FILE)  # full disk: one OSError
            np.savez(temporary / RANDOM_FILE, *[v.numpy() for v in extra_variables(self.model)])
            if restored_changed or not previous_best.exists():
                np.savez(temporary / BEST_FILE, *(self.early_stopping.best_weights or []))
            else:
                shutil.copyfile(previous_best, temporary / BEST_FILE)
            state = {
                "epoch": self.epochs_done,
                "history": self.history,
                "early_stopping": self.early_stopping.state(),
                "run_id": self.run_id,
                "stopped": bool(self.model.stop_training),
                "fingerprint": self.fingerprint,
            }
            files.write_json(temporary / STATE_FILE, state)
        ignore = self.folder.parent / ".gitignore"
        if not ignore.exists():
            files.write_text(ignore, "# resumable-training checkpoints: never commit\n*\n")
