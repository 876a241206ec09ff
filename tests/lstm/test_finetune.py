"""pipeline/lstm/finetune.py: fine-tuning on the corpus alone after extra text: its epochs and
steps, resuming, and its refusal without extra text."""

import keras
import numpy as np
import pytest

from pipeline.core.config import EncodeParams, TrainParams
from pipeline.core.errors import PipelineError
from pipeline.corpus.encoded import EncodedData
from pipeline.encode import encode_corpus
from pipeline.lstm import checkpoints, signals
from pipeline.lstm.finetune import check_finetune, finetune_model
from pipeline.lstm.fitting import (
    TrainingJob,
    create_model,
    fit_model,
    restore_training_state,
)
from tests.support.params import committed
from tests.support.training import CORPUS, StepCounter, fitted_job


@pytest.mark.parametrize("stateful", [False, True])
def test_finetuning_trains_on_the_corpus_alone_and_appends_its_epochs(tmp_path, stateful):
    extra = "Double, double toil and trouble; fire burn and cauldron bubble.\n" * 60
    params = committed(TrainParams,
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
    params = committed(TrainParams,
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
    encode = committed(EncodeParams, seq_len=20, stride=10, val_fraction=0.2)
    data = EncodedData(*encode_corpus(CORPUS, encode))
    check_finetune(committed(TrainParams, finetune_epochs=0), data)
    with pytest.raises(PipelineError, match=r"there is none .*set train.finetune_epochs: 0"):
        check_finetune(committed(TrainParams, finetune_epochs=2), data)
