"""Fine-tuning: after a run with extra training text, epochs on the corpus's own training text alone
from a fresh optimiser."""

from __future__ import annotations

import dataclasses
import logging

import keras

from pipeline.core.config import TrainParams
from pipeline.core.errors import PipelineError
from pipeline.corpus.encoded import EncodedData
from pipeline.lstm import distribute
from pipeline.lstm.callbacks import TrainingProgress
from pipeline.lstm.datasets import training_steps
from pipeline.lstm.fitting import (
    TrainingJob,
    check_finite,
    make_datasets,
)
from pipeline.lstm.fused import fused_twin
from pipeline.lstm.optimizer import compile_model

log = logging.getLogger(__name__)


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
    steps = training_steps(own, tuned)
    with job.strategy.scope():
        model = fused_twin(job.trained_model())  # the plain model, or its fused twin on a CPU
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
