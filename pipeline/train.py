"""Stage 6, train: encoded ids -> a trained Keras model, tracked in MLflow.

Reads `data/encoded/` and the `train` and `mlflow` params; writes `models/model.keras` (best
weights by validation loss; byte for byte the same for the same inputs on one machine) and
`reports/train_history.csv` (per-epoch losses, a `dvc plots` source), and tags its MLflow run with
the model's sha256, by which evaluate continues the same run.
Run with `python -m pipeline.train`.

With extra training text (`download.extra_members`), `train.finetune_epochs` ends the run with that
many epochs on the corpus's own training text alone (see `finetune_model`).

It uses a GPU when TensorFlow sees one (mixed precision by `train.precision`), several devices or
machines by `train.distribution` (see `pipeline/lstm/distribute.py`), and checkpoints every epoch: a
run stopped by SIGTERM, SIGINT or a crash continues from its last finished epoch when re-run
(see `pipeline/lstm/checkpoints.py`). Its MLflow run ends KILLED or FAILED, never stays RUNNING.
"""

from __future__ import annotations

import csv
import functools
import io
import logging
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import keras
import mlflow
import numpy as np
import tensorflow as tf

from pipeline.core import files, hashing
from pipeline.core.cli import run_stage
from pipeline.core.config import Params
from pipeline.core.params import load_params
from pipeline.core.paths import (
    CHECKPOINT_DIR,
    HISTORY_PATH,
    MODEL_PATH,
    VALIDATION_DOCS_DIR,
    VALIDATION_SUMMARY_PATH,
    VOCAB_PATH,
)
from pipeline.corpus.encoded import load_encoded
from pipeline.lstm import checkpoints, distribute, signals
from pipeline.lstm.callbacks import EpochMetrics
from pipeline.lstm.checkpoints import Checkpoint
from pipeline.lstm.datasets import training_steps
from pipeline.lstm.finetune import check_finetune, finetune_model
from pipeline.lstm.fitting import (
    TrainingJob,
    create_model,
    fit_model,
    restore_training_state,
)
from pipeline.lstm.hardware import Hardware, detect_hardware
from pipeline.lstm.model import save_model
from pipeline.quality.gate import require_passed_validation
from pipeline.tracking import models, registry
from pipeline.tracking import runs as tracking

log = logging.getLogger(__name__)


def history_csv(history: dict[str, list[float]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    keys = sorted(history)
    writer.writerow(["epoch", *keys])
    for epoch in range(len(history[keys[0]]) if keys else 0):
        writer.writerow([epoch + 1, *(f"{history[key][epoch]:.6f}" for key in keys)])
    return buffer.getvalue()


def log_summary(model: keras.Model, hardware: Hardware, strategy: tf.distribute.Strategy) -> None:
    lines: list[str] = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    log.debug("%s", "\n".join(lines))  # CHARLSTM_DEBUG=1 shows it
    log.info(
        "%s: %d parameters on %s (%s), %s, %s",
        model.name,
        model.count_params(),
        hardware.device,
        hardware.precision,
        distribute.describe_strategy(strategy),
        distribute.task_description(),
    )


def save_outputs(
    params: Params, model: keras.Model, history: dict[str, list[float]], run: mlflow.ActiveRun
) -> None:
    """Write the model, history and run record, and log them to the open MLflow run."""
    best_epoch = int(np.argmin(history["val_loss"])) + 1
    final = {
        "best_val_loss": min(history["val_loss"]),
        registry.SELECTION_METRIC: min(history["val_loss"]) / math.log(2),
        "best_epoch": best_epoch,
        "epochs_run": len(history["val_loss"]),
    }
    with files.atomic_path(MODEL_PATH, suffix=".keras") as temporary:
        save_model(model, temporary)
    files.write_text(HISTORY_PATH, history_csv(history))
    mlflow.log_artifact(str(HISTORY_PATH), artifact_path="plots")
    mlflow.log_artifacts(str(VALIDATION_DOCS_DIR), artifact_path="validation/docs")
    mlflow.log_artifact(str(VALIDATION_SUMMARY_PATH), artifact_path="validation")
    # The Keras model and the servable generator (model + vocabulary + sampler).
    versions = models.log_models(params, model, MODEL_PATH, VOCAB_PATH)
    tracking.log_final_metrics(final)  # on the run and on both logged models
    if versions:
        registry.promote_if_better(versions, final[registry.SELECTION_METRIC])
    tracking.record_run(MODEL_PATH)
    log.info(
        "best val_loss %.4f at epoch %d of %d",
        min(history["val_loss"]),
        best_epoch,
        len(history["val_loss"]),
    )


def run_tags(
    hardware: Hardware, strategy: tf.distribute.Strategy, resume: Checkpoint | None
) -> dict[str, str]:
    tags = {
        "device": hardware.device,
        "precision": hardware.precision,
        "distribution": distribute.describe_strategy(strategy),
    }
    if resume:
        tags |= {"resumed_from_epoch": str(resume.epoch), "resumed_from_run": resume.run_id or ""}
    return tags


def train_as_chief(
    job: TrainingJob,
    params: Params,
    checkpoint_state: Callable[[str | None], checkpoints.EpochCheckpoint],
    tags: dict[str, str],
) -> None:
    """Train inside an MLflow run, write every output, then drop the no longer needed checkpoint.
    `checkpoint_state(run_id)` makes the checkpointing callback once the run's id is known."""
    model, resume = job.model, job.resume
    with tracking.training_run(params, tags) as run:
        state = checkpoint_state(run.info.run_id)
        # A tag, not a metric: the compare view plots metrics; MLflow params are params.yaml's.
        mlflow.set_tag("model_parameters", str(model.count_params()))
        if resume:
            log.info("resuming after epoch %d of run %s", resume.epoch, resume.run_id)
            tracking.log_history(resume.history)  # this run then holds the whole curve
        started = time.monotonic()
        try:
            history = fit_model(job, state, [EpochMetrics()])
            history = finetune_model(job, history, [EpochMetrics()])
        except signals.Interrupted as stop:
            mlflow.set_tags(
                {"interrupted_by": stop.signal_name, "checkpoint_epoch": str(state.epochs_done)}
            )
            log.warning(
                "%s after epoch %d: re-run to resume from %s",
                stop.signal_name,
                state.epochs_done,
                CHECKPOINT_DIR,
            )
            raise
        # Wall-clock, so in MLflow only: DVC-tracked outputs stay a function of their inputs.
        mlflow.log_metric("train_minutes", (time.monotonic() - started) / 60)
        save_outputs(params, job.trained_model(), history, run)
    checkpoints.remove_checkpoint(CHECKPOINT_DIR)


def train_as_worker(job: TrainingJob, state: checkpoints.EpochCheckpoint, scratch: Path) -> None:
    """A non-chief worker: the same steps (collectives need every worker); outputs to scratch."""
    finetune_model(job, fit_model(job, state, []), [])
    job.trained_model().save(scratch / "model.keras")


def main() -> None:
    params = load_params()
    require_passed_validation()
    settings = params.train
    strategy = distribute.create_strategy(settings.distribution)  # before any other TF op
    hardware = detect_hardware(settings.precision)
    keras.mixed_precision.set_global_policy(hardware.precision)
    keras.utils.set_random_seed(settings.seed)
    if settings.deterministic:  # same inputs, same weights to the bit (see TrainParams)
        tf.config.experimental.enable_op_determinism()
    data = load_encoded()
    check_finetune(settings, data)
    fingerprint = checkpoints.fingerprint(settings, hardware.precision, hashing.hash_folder())
    resume = checkpoints.find_checkpoint(CHECKPOINT_DIR, fingerprint)
    steps = training_steps(data, settings)
    model, scorer = create_model(len(data.vocabulary), settings, steps, strategy)
    early_stopping = restore_training_state(model, strategy, resume, settings)
    log_summary(model, hardware, strategy)
    job = TrainingJob(settings, model, scorer, data, strategy, resume, steps)
    with signals.SignalGuard().installed() as guard, tempfile.TemporaryDirectory() as scratch:
        chief = distribute.is_chief(strategy)
        checkpoint_state = functools.partial(
            checkpoints.EpochCheckpoint,
            CHECKPOINT_DIR if chief else Path(scratch) / "checkpoint",
            early_stopping,
            fingerprint,
            guard,
            history=resume.history if resume else {},
        )
        if chief:
            train_as_chief(job, params, checkpoint_state, run_tags(hardware, strategy, resume))
        else:
            train_as_worker(job, checkpoint_state(None), Path(scratch))


if __name__ == "__main__":
    run_stage("train", main)
