"""pipeline/lstm/fused.py: the fused LSTM computes what Keras' LSTM computes, forwards and
backwards, and the twin to fit holds the model's weights and random state."""

import keras
import numpy as np
import tensorflow as tf

from pipeline.lstm.builders import ModelShape, build_sequence_model
from pipeline.lstm.checkpoints import extra_variables
from pipeline.lstm.fused import FusedLSTM, fusable, fused_twin, lstm_sequence


def test_lstm_sequence_matches_keras_outputs_states_and_every_gradient():
    keras.utils.set_random_seed(0)
    layer = keras.layers.LSTM(8, return_sequences=True, return_state=True)
    x, h0, c0 = tf.random.normal((3, 5, 4)), tf.random.normal((3, 8)), tf.random.normal((3, 8))
    layer(x, initial_state=[h0, c0])
    cell = layer.cell
    weights = [cell.kernel, cell.recurrent_kernel, cell.bias]
    upstream = [tf.random.normal((3, 5, 8)), tf.random.normal((3, 8)), tf.random.normal((3, 8))]
    results = []
    for run in (
        lambda: layer(x, initial_state=[h0, c0]),
        lambda: lstm_sequence(x, h0, c0, *[w.value for w in weights]),
    ):
        with tf.GradientTape() as tape:
            tape.watch([x, h0, c0])
            outputs = run()
            loss = sum(tf.reduce_sum(o * u) for o, u in zip(outputs, upstream, strict=True))
        gradients = tape.gradient(loss, [x, h0, c0, *weights])
        results.append([np.asarray(t) for t in [*outputs, *gradients]])
    keras_results, fused_results = results
    for want, got in zip(keras_results, fused_results, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_the_twin_has_fused_layers_the_weights_and_the_seed_state_and_the_same_outputs():
    keras.utils.set_random_seed(1)
    model = build_sequence_model(7, ModelShape(embedding_dim=4, units=6, layers=2, dropout=0.3))
    twin = fused_twin(model)
    assert twin is not model
    assert [type(layer) for layer in twin.layers if isinstance(layer, keras.layers.LSTM)] == [
        FusedLSTM,
        FusedLSTM,
    ]
    assert not any(isinstance(layer, FusedLSTM) for layer in model.layers)  # what gets saved
    for want, got in zip(model.get_weights(), twin.get_weights(), strict=True):
        np.testing.assert_array_equal(want, got)
    for want, got in zip(extra_variables(model), extra_variables(twin), strict=True):
        np.testing.assert_array_equal(want.numpy(), got.numpy())
    ids = np.random.default_rng(0).integers(0, 7, (2, 9)).astype(np.int32)
    np.testing.assert_allclose(twin(ids), model(ids), rtol=1e-5, atol=1e-6)
    # Training mode draws the same dropout masks from the copied seed state.
    np.testing.assert_allclose(twin(ids, training=True), model(ids, training=True), atol=1e-5)


def test_a_layer_with_dropout_inside_the_cell_keeps_keras_loop():
    keras.utils.set_random_seed(2)
    inputs = keras.Input((None, 3))
    plain = keras.Model(inputs, keras.layers.LSTM(4, recurrent_dropout=0.1)(inputs))
    assert not fusable(plain.layers[-1])
    assert fused_twin(plain) is plain
    assert fusable(keras.layers.LSTM(4))
