"""pipeline/optimizer.py: the learning-rate schedule and the optimiser training compiles with."""

import keras
import pytest

from pipeline.config import TrainParams
from pipeline.optimizer import learning_rate, make_optimizer


def test_learning_rate_schedules():
    assert learning_rate(TrainParams(lr_schedule="constant", learning_rate=0.01), 10) == 0.01
    cosine = learning_rate(TrainParams(learning_rate=0.01, epochs=2), 10)
    assert float(cosine(0)) == pytest.approx(0.01)
    assert float(cosine(20)) == pytest.approx(0.001)  # decays to a tenth over every step


def test_weight_decay_chooses_adamw_and_spares_the_biases():
    assert type(make_optimizer(TrainParams(weight_decay=0.0), 10)) is keras.optimizers.Adam
    optimizer = make_optimizer(TrainParams(weight_decay=0.01, clipnorm=2.0), 10)
    assert isinstance(optimizer, keras.optimizers.AdamW)
    assert optimizer.weight_decay == pytest.approx(0.01)
    assert optimizer.clipnorm == 2.0
