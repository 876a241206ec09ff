"""pipeline/train.py's own pieces: precision choice, divergence check, history CSV, stateful
training and fine-tuning on the corpus after extra text.

The modules train wires together have their own test files (test_data, test_model,
test_checkpoints, test_tracking, test_distribute)."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from pipeline.core.config import EncodeParams, TrainParams
from pipeline.core.errors import PipelineError
from pipeline.corpus.encoded import EncodedData
from pipeline.encode import encode_corpus
from pipeline.lstm import checkpoints, early_stopping, signals
from pipeline.lstm.datasets import training_steps
from pipeline.lstm.finetune import check_finetune, finetune_model
from pipeline.lstm.fitting import (
    TrainingJob,
    check_finite,
    create_model,
    fit_model,
    restore_training_state,
)
from pipeline.lstm.hardware import choose_precision
from pipeline.train import history_csv

CORPUS = "When shall we three meet again\nIn thunder, lightning, or in rain?\n" * 40


@pytest.mark.parametrize(
    ("requested", "capabilities", "expected"),
    [
        ("auto", [], "float32"),  # CPU
        ("auto", [(9, 0)], "mixed_bfloat16"),  # H100
        ("auto", [(8, 0), (8, 6)], "mixed_bfloat16"),  # A100 + A40
        ("auto", [(7, 5)], "mixed_float16"),  # T4
        ("auto", [(8, 0), (7, 0)], "mixed_float16"),  # the oldest GPU decides
        ("auto", [(6, 1)], "float32"),  # GTX 1080: no tensor cores
        ("mixed_float16", [], "mixed_float16"),  # an explicit choice always wins
    ],
)
def test_choose_precision(requested, capabilities, expected):
    assert choose_precision(requested, capabilities) == expected


def test_check_finite_names_the_metric_and_the_fix():
    check_finite({"loss": [3.0, 2.5], "val_loss": [3.1, 2.6]})
    with pytest.raises(
        PipelineError, match=r"training diverged: loss became nan at epoch 2; lower"
    ):
        check_finite({"loss": [3.0, math.nan]})


def test_history_csv_numbers_epochs_from_one():
    text = history_csv({"val_loss": [2.5, 2.25], "loss": [3.0, 2.0]})
    assert text == "epoch,loss,val_loss\n1,3.000000,2.500000\n2,2.000000,2.250000\n"


def fitted_job(tmp_path, params: TrainParams, extra: str = "") -> tuple[TrainingJob, dict]:
    """A job on a tiny corpus (and `extra` text) whose main run is done, and its history."""
    encode = EncodeParams(seq_len=20, stride=10, val_fraction=0.2)
    data = EncodedData(*encode_corpus(CORPUS, encode, extra))
    steps = training_steps(data, params)
    strategy = tf.distribute.get_strategy()
    keras.utils.set_random_seed(params.seed)
    model, scorer = create_model(len(data.vocabulary), params, steps, strategy)
    job = TrainingJob(params, model, scorer, data, strategy, resume=None, steps=steps)
    state = checkpoints.EpochCheckpoint(
        tmp_path / "checkpoint",
        early_stopping.ResumableEarlyStopping(params.patience),
        "test",
        signals.SignalGuard(),
    )
    return job, fit_model(job, state, [])


def test_stateful_training_fits_the_twin_and_validates_and_saves_the_plain_model(tmp_path):
    params = TrainParams(
        stateful=True, batch_size=4, units=8, embedding_dim=4, layers=1, epochs=2, patience=2
    )
    job, history = fitted_job(tmp_path, params)
    model, scorer, data = job.model, job.scorer, job.data
    assert model.get_layer("lstm_0").stateful and not scorer.get_layer("lstm_0").stateful

    assert len(history["val_loss"]) == 2 and all(map(math.isfinite, history["val_loss"]))
    trained = job.trained_model()
    assert trained is scorer
    for want, got in zip(model.get_weights(), trained.get_weights(), strict=True):
        np.testing.assert_array_equal(want, got)
    odd_batch = np.zeros((3, 7), dtype=np.int32)  # any batch size: no state kept
    assert trained.predict(odd_batch, verbose=0).shape == (3, 7, len(data.vocabulary))


class StepCounter(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.steps: list[int] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.steps.append(0)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.steps[-1] += 1


@pytest.mark.parametrize("stateful", [False, True])
def test_finetuning_trains_on_the_corpus_alone_and_appends_its_epochs(tmp_path, stateful):
    extra = "Double, double toil and trouble; fire burn and cauldron bubble.\n" * 60
    params = TrainParams(
        batch_size=4, units=8, embedding_dim=4, layers=1, epochs=1, steps_per_epoch=3,
        stateful=stateful, finetune_epochs=2, finetune_learning_rate=0.01,
    )  # fmt: skip
    job, history = fitted_job(tmp_path, params, extra)
    before = job.trained_model().get_weights()
    counter = StepCounter()

    tuned = finetune_model(job, history, [counter])

    assert len(tuned["val_loss"]) == len(tuned["loss"]) == 3
    assert tuned["val_loss"][0] == history["val_loss"][0]
    # One pass over the corpus's own training windows per epoch: not over the extra text too,
    # and not capped at the main run's `steps_per_epoch`.
    own = job.data.train_ids[job.data.spec.extra_chars :]
    windows = (len(own) - 20 - 1) // 10 + 1
    assert counter.steps == [windows // 4] * 2
    after = job.trained_model().get_weights()  # what train saves, the stateful twin included
    assert not all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    for want, got in zip(job.model.get_weights(), after, strict=True):
        np.testing.assert_array_equal(want, got)


def test_a_run_stopped_before_finetuning_ends_resumed_as_if_never_stopped(tmp_path):
    """Fine-tuning writes no checkpoint: a run stopped during it is re-run from the main run's
    last checkpoint (no main epoch left) and fine-tunes again, to the same weights."""
    extra = "Double, double toil and trouble; fire burn and cauldron bubble.\n" * 60
    params = TrainParams(
        batch_size=4, units=8, embedding_dim=4, layers=1, epochs=2, steps_per_epoch=3,
        dropout=0.2, finetune_epochs=2, finetune_learning_rate=0.01,
    )  # fmt: skip
    job, history = fitted_job(tmp_path / "whole", params, extra)
    whole = finetune_model(job, history, [])
    expected = job.trained_model().get_weights()

    stopped, _ = fitted_job(tmp_path / "stopped", params, extra)  # stopped before fine-tuning
    resume = checkpoints.find_checkpoint(tmp_path / "stopped" / "checkpoint", "test")
    assert resume is not None and resume.epoch == 2
    keras.utils.set_random_seed(params.seed)  # a new process, as train's main starts one
    model, scorer = create_model(
        len(stopped.data.vocabulary), params, stopped.steps, stopped.strategy
    )
    early_stopping = restore_training_state(model, stopped.strategy, resume, params)
    job = TrainingJob(params, model, scorer, stopped.data, stopped.strategy, resume, stopped.steps)
    state = checkpoints.EpochCheckpoint(
        tmp_path / "stopped" / "checkpoint", early_stopping, "test", signals.SignalGuard(),
        history=resume.history,
    )  # fmt: skip
    resumed = finetune_model(job, fit_model(job, state, []), [])

    assert resumed == whole
    for want, got in zip(expected, job.trained_model().get_weights(), strict=True):
        np.testing.assert_array_equal(want, got)


def test_finetuning_without_extra_text_is_refused_before_training():
    encode = EncodeParams(seq_len=20, stride=10, val_fraction=0.2)
    data = EncodedData(*encode_corpus(CORPUS, encode))
    check_finetune(TrainParams(finetune_epochs=0), data)
    with pytest.raises(PipelineError, match=r"there is none .*set train.finetune_epochs: 0"):
        check_finetune(TrainParams(finetune_epochs=2), data)
