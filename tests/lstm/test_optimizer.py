"""pipeline/lstm/optimizer.py: the learning-rate schedule and the optimiser training compiles
with."""

import keras
import numpy as np
import pytest

from pipeline.core.config import TrainParams
from pipeline.lstm.optimizer import learning_rate, make_optimizer
from tests.support.params import committed


def test_learning_rate_schedules():
    assert (
        learning_rate(committed(TrainParams, lr_schedule="constant", learning_rate=0.01), 10)
        == 0.01
    )
    cosine = learning_rate(committed(TrainParams, learning_rate=0.01, epochs=2), 10)
    assert float(cosine(0)) == pytest.approx(0.01)
    assert float(cosine(20)) == pytest.approx(0.001)  # decays to a tenth over every step


def test_weight_decay_chooses_adamw_and_spares_the_biases():
    assert (
        type(make_optimizer(committed(TrainParams, weight_decay=0.0), 10)) is keras.optimizers.Adam
    )
    optimizer = make_optimizer(committed(TrainParams, weight_decay=0.01, clipnorm=2.0), 10)
    assert isinstance(optimizer, keras.optimizers.AdamW)
    assert optimizer.weight_decay == pytest.approx(0.01)
    assert optimizer.clipnorm == 2.0


def test_ema_writes_the_moving_average_into_the_model_after_each_epoch():
    assert not make_optimizer(committed(TrainParams), 10).use_ema
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    optimizer = make_optimizer(committed(TrainParams, ema_momentum=0.5, lr_schedule="constant"), 4)
    model.compile(optimizer=optimizer, loss="mse")
    averaged = []  # per epoch: do the model's weights equal the moving averages?

    def check(epoch: int, logs: dict) -> None:
        averages = optimizer._model_variables_moving_average  # noqa: SLF001 - what EMA keeps
        pairs = zip(model.trainable_variables, averages, strict=True)
        averaged.append(all(np.array_equal(v.numpy(), a.numpy()) for v, a in pairs))

    inputs, targets = np.ones((8, 3)), np.full((8, 1), 5.0)
    callback = keras.callbacks.LambdaCallback(on_epoch_end=check)
    model.fit(inputs, targets, batch_size=2, epochs=2, verbose=0, callbacks=[callback])  # 4 steps
    assert averaged == [True, True]  # already after the first epoch, before fit's own finalising
