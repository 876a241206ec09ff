"""Held-out scoring: the stateful pass equals one pass of the model over the whole text."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from pipeline.core.config import TrainParams
from pipeline.corpus.encoded import EncodedData
from pipeline.corpus.windows import WindowSpec
from pipeline.lstm.builders import ModelShape, build_sequence_model
from pipeline.lstm.optimizer import compile_model
from pipeline.scoring.likelihood import CHUNK, continuous_loss, windowed_loss
from tests.support.params import committed

VOCAB = 7


@pytest.fixture(scope="module")
def model() -> keras.Model:
    keras.utils.set_random_seed(3)
    shape = ModelShape(embedding_dim=4, units=8, layers=2, dropout=0.3, embedding_dropout=0.2)
    model = build_sequence_model(VOCAB, shape)
    compile_model(model, committed(TrainParams), steps_per_epoch=1)  # evaluate() needs the loss
    return model


def cross_entropy(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(time,) nats per target from (time, vocab) logits, in float64."""
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return -log_softmax[np.arange(len(targets)), targets]


def test_continuous_loss_equals_one_pass_over_warmup_and_text(model):
    rng = np.random.default_rng(0)
    warmup, ids = rng.integers(0, VOCAB, 300), rng.integers(0, VOCAB, 2 * CHUNK + 77)
    stream = np.concatenate([warmup, ids])
    logits = model.predict(stream[None, :-1].astype(np.int32), verbose=0)[0]  # (time, vocab)
    # prediction t reads stream[..t] and targets stream[t + 1]: the text's targets start at 300
    expected = cross_entropy(logits, stream[1:])[len(warmup) - 1 :].mean()
    assert math.isclose(continuous_loss(model, ids, warmup), expected, rel_tol=1e-5)


def test_windowed_loss_restarts_every_window(model):
    rng = np.random.default_rng(1)
    seq_len = 20
    ids = rng.integers(0, VOCAB, 5 * seq_len + 1)
    spec = WindowSpec(seq_len, seq_len, 0, 0, len(ids), 0, 0, 5, VOCAB)
    data = EncodedData([chr(97 + i) for i in range(VOCAB)], ids[:0], ids[:0], ids, spec)
    per_window = []
    for start in range(0, 5 * seq_len, seq_len):
        window = ids[start : start + seq_len + 1]
        logits = model.predict(window[None, :-1].astype(np.int32), verbose=0)[0]
        per_window.append(cross_entropy(logits, window[1:]))
    expected = float(np.concatenate(per_window).mean())
    assert math.isclose(windowed_loss(model, ids, data, batch=2), expected, rel_tol=1e-5)


def test_carrying_the_state_changes_the_score(model):
    rng = np.random.default_rng(2)
    ids = rng.integers(0, VOCAB, 200)
    cold = continuous_loss(model, ids, ids[:1])
    warm = continuous_loss(model, ids, rng.integers(0, VOCAB, 100))
    assert cold != warm
