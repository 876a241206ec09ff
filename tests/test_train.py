"""pipeline/train.py's own pieces: precision choice, divergence check, history CSV.

The modules train wires together have their own test files (test_data, test_model,
test_checkpoints, test_tracking, test_distribute)."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from pipeline import checkpoints
from pipeline.config import EncodeParams, TrainParams
from pipeline.data import training_steps
from pipeline.encode import encode_corpus
from pipeline.encoded import EncodedData
from pipeline.errors import PipelineError
from pipeline.train import (
    TrainingJob,
    check_finite,
    choose_precision,
    create_model,
    fit_model,
    history_csv,
)


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


def test_stateful_training_fits_the_twin_and_validates_and_saves_the_plain_model(tmp_path):
    text = "When shall we three meet again\nIn thunder, lightning, or in rain?\n" * 40
    data = EncodedData(*encode_corpus(text, EncodeParams(seq_len=20, stride=10, val_fraction=0.2)))
    params = TrainParams(
        stateful=True, batch_size=4, units=8, embedding_dim=4, layers=1, epochs=2, patience=2
    )
    steps = training_steps(data, params)
    strategy = tf.distribute.get_strategy()
    keras.utils.set_random_seed(params.seed)
    model, scorer = create_model(len(data.vocabulary), params, steps, strategy)
    assert model.get_layer("lstm_0").stateful and not scorer.get_layer("lstm_0").stateful
    job = TrainingJob(params, model, scorer, data, strategy, resume=None, steps=steps)
    state = checkpoints.EpochCheckpoint(
        tmp_path / "checkpoint",
        checkpoints.ResumableEarlyStopping(params.patience),
        "test",
        checkpoints.SignalGuard(),
    )

    history = fit_model(job, state, [])

    assert len(history["val_loss"]) == 2 and all(map(math.isfinite, history["val_loss"]))
    trained = job.trained_model()
    assert trained is scorer
    for want, got in zip(model.get_weights(), trained.get_weights(), strict=True):
        np.testing.assert_array_equal(want, got)
    odd_batch = np.zeros((3, 7), dtype=np.int32)  # any batch size: no state kept
    assert trained.predict(odd_batch, verbose=0).shape == (3, 7, len(data.vocabulary))
