"""Held-out likelihood of a trained model under the two protocols that evaluate reports.

- **windowed**: the text cut into non-overlapping `seq_len` windows, each scored from a fresh
  state (what train's validation loss measures, see `pipeline.lstm.datasets.windowed_dataset`);
- **continuous**: the whole text in one pass with the LSTM state carried across, after a warm-up
  on the characters just before it: the usual protocol for character language models, and the
  one an n-gram gets when its history is never cut.

The tutorial architecture reads a sliding 50-character window and has no state to carry: it has
only its own windowed protocol (every character from position 50 on, after its 50 predecessors).
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from pipeline.corpus.encoded import EncodedData
from pipeline.lstm.datasets import windowed_dataset
from pipeline.lstm.model import EMBEDDING, LOGITS, architecture_of

CHUNK = 512  # characters per call of the stateful pass: bounds memory, not the result


def windowed_loss(model: keras.Model, ids: np.ndarray, data: EncodedData, batch: int) -> float:
    """Mean cross-entropy per character (nats) of `ids` under the windowed protocol."""
    return float(
        model.evaluate(windowed_dataset(ids, data, architecture_of(model), batch), verbose=0)
    )


def stateful_twin(model: keras.Model) -> keras.Model:
    """The sequence model rebuilt to take and return the LSTM states, sharing its weights:
    `[ids (1, time), h_0, c_0, h_1, c_1, ...] -> [logits (1, time, vocab), h_0', c_0', ...]`."""
    lstms = [layer for layer in model.layers if isinstance(layer, layers.LSTM)]
    ids = keras.Input(batch_shape=(1, None), dtype="int32")
    states_in = [keras.Input(batch_shape=(1, lstm.units)) for lstm in lstms for _ in range(2)]
    x = model.get_layer(EMBEDDING)(ids)
    states_out = []
    for index, lstm in enumerate(lstms):
        config = {**lstm.get_config(), "return_state": True, "name": f"{lstm.name}_stateful"}
        twin = layers.LSTM.from_config(config)
        x, hidden, cell = twin(x, initial_state=states_in[2 * index : 2 * index + 2])
        twin.set_weights(lstm.get_weights())
        states_out += [hidden, cell]
    logits = model.get_layer(LOGITS)(x)  # (1, time, vocab); dropout is off at inference anyway
    return keras.Model([ids, *states_in], [logits, *states_out])


def continuous_loss(model: keras.Model, ids: np.ndarray, warmup: np.ndarray) -> float:
    """Mean cross-entropy per character (nats) of `ids` scored in one stateful pass, after the
    state has read `warmup` (the text just before `ids`, e.g. the end of the validation text)."""
    twin = stateful_twin(model)
    states = [np.zeros(shape=(1, *s.shape[1:]), dtype="float32") for s in twin.inputs[1:]]

    @tf.function(reduce_retracing=True)
    def run(chunk: tf.Tensor, states: list[tf.Tensor]) -> list[tf.Tensor]:
        return twin([chunk, *states], training=False)

    # The first target is ids[0], predicted from the last warm-up character's output.
    stream = np.concatenate([warmup, ids]).astype(np.int32)
    first_target = len(warmup)
    total, count = 0.0, 0
    for start in range(0, len(stream) - 1, CHUNK):
        inputs = stream[start : start + CHUNK][None, :]  # (1, time)
        targets = stream[start + 1 : start + 1 + CHUNK]
        inputs = inputs[:, : len(targets)]
        logits, *states = run(tf.constant(inputs), states)
        losses = keras.losses.sparse_categorical_crossentropy(
            targets, logits[0], from_logits=True
        ).numpy()  # (time,)
        scored = np.arange(start + 1, start + 1 + len(targets)) >= first_target
        total += float(losses[scored].sum())
        count += int(scored.sum())
    return total / count


def bits(loss_nats: float) -> float:
    return loss_nats / math.log(2)
