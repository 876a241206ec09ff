"""Fitting a model to the encoded corpus: the training job, its datasets, and the main run with
checkpoints, early stopping and progress."""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import tensorflow as tf

from pipeline.core.config import TrainParams
from pipeline.core.errors import PipelineError
from pipeline.corpus.encoded import EncodedData
from pipeline.lstm import checkpoints, distribute, early_stopping
from pipeline.lstm.builders import (
    build_model,
)
from pipeline.lstm.callbacks import StatefulValidation, TrainingProgress
from pipeline.lstm.checkpoints import Checkpoint
from pipeline.lstm.datasets import is_stateful, training_dataset
from pipeline.lstm.datasets import validation_dataset as make_validation_dataset
from pipeline.lstm.fused import fused_twin
from pipeline.lstm.optimizer import compile_model, next_char_loss


def create_model(
    vocab_size: int, params: TrainParams, steps_per_epoch: int, strategy: tf.distribute.Strategy
) -> tuple[keras.Model, keras.Model]:
    """Build and compile under the strategy's scope, so every variable lives on every replica.

    Returns the model to fit and the plain model that is saved (and, under `train.stateful`,
    validated): the same one, except where the fitted twin differs: under `train.stateful` it
    keeps its LSTM state between batches, and on a CPU its LSTM layers are `fused.FusedLSTM`
    (the same mathematics, faster).
    """
    stateful = is_stateful(params)
    if stateful and strategy.num_replicas_in_sync > 1:
        raise PipelineError(
            f"train.stateful carries one LSTM state per lane on one device; with "
            f"{strategy.num_replicas_in_sync} replicas set train.stateful: false"
        )
    with strategy.scope():
        built = build_model(vocab_size, params, params.batch_size if stateful else 0)
        model = fused_twin(built)
        compile_model(model, params, steps_per_epoch)
        distribute.clip_summed_gradients(model.optimizer)
        scorer = build_model(vocab_size, params) if stateful else built
        if scorer is not model:
            scorer.compile(loss=next_char_loss())  # only scored: no optimiser
    distribute.prepare_model(model, strategy)
    return model, scorer


@dataclass(frozen=True)
class TrainingJob:
    """What every training process (chief or worker) fits: built once in `main`."""

    settings: TrainParams
    model: keras.Model  # built and compiled under `strategy`
    scorer: keras.Model  # saved: `model`, or its plain twin (stateful, or fused on a CPU)
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
    if is_stateful(params):  # validation runs on the plain twin, first
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
            shuffle=False,  # the stream is already shuffled per epoch (lstm/datasets.py)
        )
    check_finite(state.history)
    return state.history


def restore_training_state(
    model: keras.Model,
    strategy: tf.distribute.Strategy,
    resume: Checkpoint | None,
    settings: TrainParams,
) -> early_stopping.ResumableEarlyStopping:
    """Load a checkpoint into `model` (in the strategy's scope, so the optimiser's slots are
    created on every replica); return early stopping, carrying on the checkpoint's counters."""
    patience, average = settings.patience, settings.average_from_best
    if resume is None:
        return early_stopping.ResumableEarlyStopping(patience, average=average)
    with strategy.scope():
        best_weights = checkpoints.restore_model_state(model, resume)
    return early_stopping.ResumableEarlyStopping(
        patience, resume.early_stopping, best_weights, average=average
    )
