"""Small training jobs for the tests of `pipeline/lstm/`: a tiny corpus, a fitted job on it, a
callback that counts steps, and a tiny compiled model."""

from pathlib import Path

import keras
import tensorflow as tf

from pipeline.core.config import EncodeParams, TrainParams
from pipeline.corpus.encoded import EncodedData
from pipeline.encode import encode_corpus
from pipeline.lstm import checkpoints, early_stopping, signals
from pipeline.lstm.datasets import training_steps
from pipeline.lstm.fitting import TrainingJob, create_model, fit_model
from tests.support.params import committed

CORPUS = "When shall we three meet again\nIn thunder, lightning, or in rain?\n" * 40


def fitted_job(tmp_path: Path, params: TrainParams, extra: str = "") -> tuple[TrainingJob, dict]:
    """A job on a tiny corpus (and `extra` text) whose main run is done, and its history."""
    encode = committed(EncodeParams, seq_len=20, stride=10, val_fraction=0.2)
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


class StepCounter(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.steps: list[int] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.steps.append(0)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.steps[-1] += 1


def tiny_model() -> keras.Model:
    """Dense -> dropout -> dense, compiled with Adam: weights, optimiser slots and a seed."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    outputs = keras.layers.Dense(1)(keras.layers.Dropout(0.5)(keras.layers.Dense(4)(inputs)))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return model
