"""Stage 6, train: encoded ids -> a trained Keras model, tracked in MLflow.

Reads `data/encoded/` and the `train` and `mlflow` params; writes `models/model.keras` (best
weights by validation loss; byte for byte the same for the same inputs on one machine) and
`reports/train_history.csv` (per-epoch losses, a `dvc plots` source), and tags its MLflow run with
the model's sha256, by which evaluate continues the same run.
Run with `python -m pipeline.train`.

With extra training text (`download.extra_members`), `train.finetune_epochs` ends the run with that
many epochs on the corpus's own training text alone (see `finetune_model`).

It uses a GPU when TensorFlow sees one (mixed precision by `train.precision`), several devices or
machines by `train.distribution` (see `pipeline/distribute.py`), and checkpoints every epoch: a
run stopped by SIGTERM, SIGINT or a crash continues from its last finished epoch when re-run
(see `pipeline/checkpoints.py`). Its MLflow run ends KILLED or FAILED, never stays RUNNING.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import logging
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import mlflow
import numpy as np
import tensorflow as tf
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec

from pipeline import checkpoints, distribute, files, tracking
from pipeline.callbacks import EpochMetrics, StatefulValidation, TrainingProgress
from pipeline.checkpoints import Checkpoint
from pipeline.cli import run_stage
from pipeline.config import Params, TrainParams, load_params
from pipeline.data import TUTORIAL_WINDOW, is_stateful, training_dataset, training_steps
from pipeline.data import validation_dataset as make_validation_dataset
from pipeline.encoded import EncodedData, load_encoded
from pipeline.errors import PipelineError
from pipeline.model import ModelShape, build_sequence_model, build_tutorial_model, save_model
from pipeline.optimizer import compile_model, next_char_loss
from pipeline.paths import (
    CHECKPOINT_DIR,
    HISTORY_PATH,
    MODEL_PATH,
    VALIDATION_DOCS_DIR,
    VALIDATION_SUMMARY_PATH,
    VOCAB_PATH,
)
from pipeline.serving import log_generator
from pipeline.validation_gate import require_passed_validation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hardware:
    device: str  # "GPU x1 (name)" or "CPU"
    precision: str  # a Keras dtype policy name


def choose_precision(requested: str, compute_capabilities: list[tuple[int, int]]) -> str:
    """Resolve `auto`: bfloat16 where every GPU has it natively (Ampere, 8.0, and later), float16
    on Volta/Turing tensor cores (7.x), else float32. On the CPU `auto` stays float32: only CPUs
    with AVX512-BF16 or AMX gain from `mixed_bfloat16` (see bench/train_throughput.py), the
    others emulate it slowly; set it explicitly where it pays."""
    if requested != "auto":
        return requested
    if not compute_capabilities:
        return "float32"
    oldest = min(compute_capabilities)
    if oldest >= (8, 0):
        return "mixed_bfloat16"
    return "mixed_float16" if oldest >= (7, 0) else "float32"


def detect_hardware(requested_precision: str) -> Hardware:
    gpus = tf.config.list_physical_devices("GPU")
    details = [tf.config.experimental.get_device_details(gpu) for gpu in gpus]
    device = f"GPU x{len(gpus)} ({details[0].get('device_name', 'unknown')})" if gpus else "CPU"
    capabilities = [tuple(d.get("compute_capability") or (0, 0)) for d in details]
    return Hardware(device, choose_precision(requested_precision, capabilities))


def model_shape(params: TrainParams) -> ModelShape:
    """The builders' view of the training settings."""
    return ModelShape(
        embedding_dim=params.embedding_dim,
        units=params.units,
        layers=params.layers,
        dropout=params.dropout,
        embedding_dropout=params.embedding_dropout,
    )


def build_model(vocab_size: int, params: TrainParams, stateful_batch: int = 0) -> keras.Model:
    if params.architecture == "tutorial":
        return build_tutorial_model(vocab_size, TUTORIAL_WINDOW, model_shape(params))
    return build_sequence_model(vocab_size, model_shape(params), stateful_batch)


def create_model(
    vocab_size: int, params: TrainParams, steps_per_epoch: int, strategy: tf.distribute.Strategy
) -> tuple[keras.Model, keras.Model]:
    """Build and compile under the strategy's scope, so every variable lives on every replica.

    Returns the model to fit and the plain model that is validated and saved: the same one,
    except under `train.stateful`, where the fitted twin keeps its LSTM state between batches.
    """
    stateful = is_stateful(params)
    if stateful and strategy.num_replicas_in_sync > 1:
        raise PipelineError(
            f"train.stateful carries one LSTM state per lane on one device; with "
            f"{strategy.num_replicas_in_sync} replicas set train.stateful: false"
        )
    with strategy.scope():
        model = build_model(vocab_size, params, params.batch_size if stateful else 0)
        compile_model(model, params, steps_per_epoch)
        distribute.clip_summed_gradients(model.optimizer)
        scorer = model
        if stateful:
            scorer = build_model(vocab_size, params)
            scorer.compile(loss=next_char_loss())  # only scored: no optimiser
    distribute.prepare_model(model, strategy)
    return model, scorer


@dataclass(frozen=True)
class TrainingJob:
    """What every training process (chief or worker) fits: built once in `main`."""

    settings: TrainParams
    model: keras.Model  # built and compiled under `strategy`
    scorer: keras.Model  # validated and saved: `model`, or its plain twin under `train.stateful`
    data: EncodedData
    strategy: tf.distribute.Strategy
    resume: Checkpoint | None  # the checkpoint to continue from, if any
    steps: int  # training batches per epoch (`data.training_steps`)

    @property
    def first_epoch(self) -> int:
        return self.resume.epoch if self.resume else 0

    def trained_model(self) -> keras.Model:
        """The plain model with the trained weights: what is saved and logged."""
        if self.scorer is not self.model:
            self.scorer.set_weights(self.model.get_weights())
        return self.scorer


def make_datasets(job: TrainingJob) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """Training stream (from the job's first epoch on) and validation pass."""
    settings, batch_size = job.settings, job.settings.batch_size
    train = distribute.distribute_dataset(
        job.strategy,
        lambda: training_dataset(job.data, settings, job.first_epoch)[0],
        batch_size,
    )
    val = distribute.distribute_dataset(
        job.strategy,
        lambda: make_validation_dataset(job.data, settings.architecture, batch_size),
        batch_size,
    )
    return train, val


def model_signature(model: keras.Model) -> ModelSignature:
    input_shape = (-1, *[-1 if d is None else d for d in model.input_shape[1:]])
    output_shape = (-1, *[-1 if d is None else d for d in model.output_shape[1:]])
    input_dtype = np.int32 if model.inputs[0].dtype == "int32" else np.float32
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(input_dtype), input_shape)]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), output_shape)]),
    )


def history_csv(history: dict[str, list[float]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    keys = sorted(history)
    writer.writerow(["epoch", *keys])
    for epoch in range(len(history[keys[0]]) if keys else 0):
        writer.writerow([epoch + 1, *(f"{history[key][epoch]:.6f}" for key in keys)])
    return buffer.getvalue()


def check_finite(history: dict[str, list[float]]) -> None:
    for key, values in history.items():
        if values and not math.isfinite(values[-1]):
            raise PipelineError(
                f"training diverged: {key} became {values[-1]} at epoch {len(values)}; "
                "lower train.learning_rate or set train.clipnorm"
            )


def fit_model(
    job: TrainingJob,
    state: checkpoints.EpochCheckpoint,
    extra_callbacks: list[keras.callbacks.Callback],
) -> dict[str, list[float]]:
    """Fit from the checkpoint (if any) to the end; return the whole run's per-epoch history."""
    params, resume, first_epoch = job.settings, job.resume, job.first_epoch
    train, val = make_datasets(job)
    progress = TrainingProgress(params.epochs, job.steps, first_epoch)  # one bar over the run
    validation: list[keras.callbacks.Callback] = []
    if job.scorer is not job.model:  # stateful: validation runs on the plain twin, first
        validation, val = [StatefulValidation(job.scorer, val)], None
    callbacks = [
        *validation,
        state.early_stopping,
        keras.callbacks.TerminateOnNaN(),
        state,
        progress,
        *extra_callbacks,
    ]
    with job.strategy.scope():  # see distribute.prepare_model
        job.model.fit(
            train,
            validation_data=val,
            epochs=params.epochs,
            steps_per_epoch=job.steps,
            initial_epoch=params.epochs if resume and resume.stopped else first_epoch,
            callbacks=callbacks,
            verbose=0,  # TrainingProgress reports instead of Keras' per-epoch bars
            shuffle=False,  # the stream is already shuffled, per epoch (see pipeline/data.py)
        )
    check_finite(state.history)
    return state.history


def check_finetune(settings: TrainParams, data: EncodedData) -> None:
    """Refuse `train.finetune_epochs` before training when there is no extra text to follow."""
    if settings.finetune_epochs and not data.spec.extra_chars:
        raise PipelineError(
            "train.finetune_epochs fine-tunes on the corpus after its extra training text, and "
            "there is none (download.extra_members is empty): set train.finetune_epochs: 0"
        )


def finetune_model(
    job: TrainingJob,
    history: dict[str, list[float]],
    extra_callbacks: list[keras.callbacks.Callback],
) -> dict[str, list[float]]:
    """`train.finetune_epochs` more epochs on the corpus's own training text alone (what follows
    the extra text), from a fresh optimiser starting at `train.finetune_learning_rate`; returns
    the history with those epochs appended.

    It fits the plain model, on windows, also after a `train.stateful` run (its lanes would span
    little text). It writes no checkpoint: it is short, and a run stopped during it resumes from
    the main run's last checkpoint (the main run already done) and fine-tunes again."""
    settings = job.settings
    if not settings.finetune_epochs:
        return history
    tuned = settings.model_copy(
        update={
            "learning_rate": settings.finetune_learning_rate,
            "epochs": settings.finetune_epochs,
            "steps_per_epoch": 0,
            "stateful": False,
            "ema_momentum": 0.0,
        }
    )
    own = dataclasses.replace(job.data, train_ids=job.data.train_ids[job.data.spec.extra_chars :])
    model = job.trained_model()
    steps = training_steps(own, tuned)
    with job.strategy.scope():
        compile_model(model, tuned, steps)
        distribute.clip_summed_gradients(model.optimizer)
    finetuning = dataclasses.replace(
        job, settings=tuned, model=model, data=own, resume=None, steps=steps
    )
    train, val = make_datasets(finetuning)
    done = len(history["val_loss"])
    total = done + tuned.epochs
    log.info("fine-tuning on the corpus alone: %d epochs of %d steps", tuned.epochs, steps)
    with job.strategy.scope():
        result = model.fit(
            train,
            validation_data=val,
            initial_epoch=done,  # the epochs go on counting, in the history and in MLflow
            epochs=total,
            steps_per_epoch=steps,
            callbacks=[
                keras.callbacks.TerminateOnNaN(),
                TrainingProgress(total, steps, done),
                *extra_callbacks,
            ],
            verbose=0,
            shuffle=False,
        )
    if job.model is not model:  # keep the fitted twin in step: `trained_model` copies from it
        job.model.set_weights(model.get_weights())
    merged = {key: [*values, *result.history[key]] for key, values in history.items()}
    check_finite(merged)
    return merged


def log_summary(model: keras.Model, hardware: Hardware, strategy: tf.distribute.Strategy) -> None:
    lines: list[str] = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    log.info("%s", "\n".join(lines))
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
        tracking.SELECTION_METRIC: min(history["val_loss"]) / math.log(2),
        "best_epoch": best_epoch,
        "epochs_run": len(history["val_loss"]),
    }
    with files.atomic_path(MODEL_PATH, suffix=".keras") as temporary:
        save_model(model, temporary)
    files.write_text(HISTORY_PATH, history_csv(history))
    mlflow.log_artifact(str(HISTORY_PATH), artifact_path="plots")
    mlflow.log_artifacts(str(VALIDATION_DOCS_DIR), artifact_path="validation/docs")
    mlflow.log_artifact(str(VALIDATION_SUMMARY_PATH), artifact_path="validation")
    keras_model = mlflow.keras.log_model(
        model,
        name="model",
        signature=model_signature(model),
        registered_model_name=params.mlflow.registered_model,
    )
    # The servable generator (model + vocabulary + sampler) for `mlflow models serve`.
    generator = log_generator(MODEL_PATH, VOCAB_PATH, f"{params.mlflow.registered_model}-generator")
    tracking.log_final_metrics(final)  # on the run and on both logged models
    tracking.promote_if_better(
        {
            params.mlflow.registered_model: str(keras_model.registered_model_version),
            f"{params.mlflow.registered_model}-generator": str(generator.registered_model_version),
        },
        final[tracking.SELECTION_METRIC],
    )
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
        mlflow.log_metric("model.parameters", model.count_params())  # params: params.yaml's only
        if resume:
            log.info("resuming after epoch %d of run %s", resume.epoch, resume.run_id)
            tracking.log_history(resume.history)  # this run then holds the whole curve
        started = time.monotonic()
        try:
            history = fit_model(job, state, [EpochMetrics()])
            history = finetune_model(job, history, [EpochMetrics()])
        except checkpoints.Interrupted as stop:
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


def restore_training_state(
    model: keras.Model,
    strategy: tf.distribute.Strategy,
    resume: Checkpoint | None,
    settings: TrainParams,
) -> checkpoints.ResumableEarlyStopping:
    """Load a checkpoint into `model` (in the strategy's scope, so the optimiser's slots are
    created on every replica); return early stopping, carrying on the checkpoint's counters."""
    patience, average = settings.patience, settings.average_from_best
    if resume is None:
        return checkpoints.ResumableEarlyStopping(patience, average=average)
    with strategy.scope():
        best_weights = checkpoints.restore_model_state(model, resume)
    return checkpoints.ResumableEarlyStopping(
        patience, resume.early_stopping, best_weights, average=average
    )


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
    fingerprint = checkpoints.fingerprint(settings, hardware.precision, tracking.hash_folder())
    resume = checkpoints.find_checkpoint(CHECKPOINT_DIR, fingerprint)
    steps = training_steps(data, settings)
    model, scorer = create_model(len(data.vocabulary), settings, steps, strategy)
    early_stopping = restore_training_state(model, strategy, resume, settings)
    log_summary(model, hardware, strategy)
    job = TrainingJob(settings, model, scorer, data, strategy, resume, steps)
    with checkpoints.SignalGuard().installed() as guard, tempfile.TemporaryDirectory() as scratch:
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
