"""A faster LSTM for training on a CPU: the same layer, weights and mathematics as Keras' `LSTM`,
with the input projection taken out of the time loop and a hand-written backward pass.

Keras has no fused LSTM kernel on the CPU: each time step of `keras.layers.LSTM` is about 15 small
ops (two matrix products, the gates), and TensorFlow's automatic gradient of that loop adds as
many again, plus a stack push and pop per intermediate, so per-op overhead, not arithmetic, bounds
training at the default size (16 x 192). `lstm_sequence` does what cuDNN does instead:
the input projection `x @ kernel + bias` of every step in one matrix product before the loop,
only `h @ recurrent_kernel` and the gates inside it, and a backward loop of one matrix product per
step whose weight gradients are again single products over all steps. It measured 1.3-1.8x the
default training step (see `bench/train_throughput.py`).

`fused_twin(model)` gives the model to fit: on a GPU (where Keras uses cuDNN) or for a model with
no eligible LSTM, the model itself; else a clone whose LSTM layers are `FusedLSTM`, holding a copy
of the weights. Only the plain model is saved (`fitting.TrainingJob.trained_model` copies the
weights back), so saved models and the served generator never see this class.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from pipeline.lstm.checkpoints import extra_variables


def _gates(z: tf.Tensor, c_prev: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Keras' gate order (input, forget, cell, output): -> activated gates, new c, tanh(c)."""
    i, f, g, o = tf.split(z, 4, axis=-1)
    i, f, g, o = tf.sigmoid(i), tf.sigmoid(f), tf.tanh(g), tf.sigmoid(o)
    c = f * c_prev + i * g
    return tf.concat([i, f, g, o], axis=-1), c, tf.tanh(c)


def lstm_sequence(  # noqa: PLR0913, PLR0917 (the layer's inputs and weights)
    x: tf.Tensor,
    h0: tf.Tensor,
    c0: tf.Tensor,
    kernel: tf.Tensor,
    recurrent_kernel: tf.Tensor,
    bias: tf.Tensor,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """`x` (batch, time, features) -> every step's `h` (batch, time, units), the last `h`, `c`."""

    @tf.custom_gradient
    def run(x, h0, c0, kernel, recurrent_kernel, bias):  # noqa: PLR0913, PLR0917
        steps, features = tf.shape(x)[1], tf.shape(x)[2]
        units = tf.shape(recurrent_kernel)[0]
        inputs = tf.reshape(tf.transpose(x, [1, 0, 2]), [-1, features])  # (time * batch, features)
        projected = tf.reshape(tf.matmul(inputs, kernel) + bias, [steps, -1, 4 * units])

        def forward(t, h, c, hs, cs, gs):  # noqa: PLR0913, PLR0917
            gates, c, tanh_c = _gates(projected[t] + tf.matmul(h, recurrent_kernel), c)
            h = gates[:, 3 * units :] * tanh_c
            return t + 1, h, c, hs.write(t, h), cs.write(t, c), gs.write(t, gates)

        arrays = [tf.TensorArray(x.dtype, size=steps) for _ in range(3)]
        _, h, c, hs, cs, gs = tf.while_loop(lambda t, *_: t < steps, forward, (0, h0, c0, *arrays))
        every_h, every_c, every_gate = hs.stack(), cs.stack(), gs.stack()  # (time, batch, ...)

        def backward(d_outputs, d_h, d_c):
            d_every_h = tf.transpose(d_outputs, [1, 0, 2])
            c_before = tf.concat([c0[None], every_c[:-1]], axis=0)

            def step(t, dh, dc, dzs):
                dh = dh + d_every_h[t]
                i, f, g, o = tf.split(every_gate[t], 4, axis=-1)
                tanh_c = tf.tanh(every_c[t])
                dc = dc + dh * o * (1 - tanh_c * tanh_c)
                dz = tf.concat(
                    [
                        dc * g * i * (1 - i),
                        dc * c_before[t] * f * (1 - f),
                        dc * i * (1 - g * g),
                        dh * tanh_c * o * (1 - o),
                    ],
                    axis=-1,
                )
                dh = tf.matmul(dz, recurrent_kernel, transpose_b=True)
                return t - 1, dh, dc * f, dzs.write(t, dz)

            dzs = tf.TensorArray(x.dtype, size=steps)
            _, dh0, dc0, dzs = tf.while_loop(lambda t, *_: t >= 0, step, (steps - 1, d_h, d_c, dzs))
            dz = tf.reshape(dzs.stack(), [-1, 4 * units])  # (time * batch, 4 units)
            h_before = tf.reshape(tf.concat([h0[None], every_h[:-1]], axis=0), [-1, units])
            dx = tf.reshape(tf.matmul(dz, kernel, transpose_b=True), [steps, -1, features])
            return (
                tf.transpose(dx, [1, 0, 2]),
                dh0,
                dc0,
                tf.matmul(inputs, dz, transpose_a=True),
                tf.matmul(h_before, dz, transpose_a=True),
                tf.reduce_sum(dz, axis=0),
            )

        return (tf.transpose(every_h, [1, 0, 2]), h, c), backward

    return run(x, h0, c0, kernel, recurrent_kernel, bias)


class FusedLSTM(keras.layers.LSTM):
    """`keras.layers.LSTM` whose time loop is `lstm_sequence` where that is the same mathematics
    (Keras' default activations, a bias, no dropout inside the cell, no mask, forwards); anything
    else, and any GPU (cuDNN), takes Keras' own loop."""

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if not fusable(self) or mask is not None:
            return super().inner_loop(sequences, initial_state, mask, training=training)
        cell = self.cell
        outputs, h, c = lstm_sequence(
            sequences,
            initial_state[0],
            initial_state[1],
            cell.kernel.value,
            cell.recurrent_kernel.value,
            cell.bias.value,
        )
        return h, outputs, [h, c]


def fusable(layer: keras.layers.LSTM) -> bool:
    """Whether `lstm_sequence` computes exactly what this layer's own loop would, on a CPU."""
    cell = layer.cell
    return (
        not tf.config.list_logical_devices("GPU")
        and cell.use_bias
        and not cell.dropout
        and not cell.recurrent_dropout
        and not layer.go_backwards
        and not layer.unroll
        and cell.activation is keras.activations.tanh
        and cell.recurrent_activation is keras.activations.sigmoid
        and layer.compute_dtype == "float32"
    )


def _swap_lstm(layer: keras.layers.Layer) -> keras.layers.Layer:
    if type(layer) is keras.layers.LSTM:
        return FusedLSTM.from_config(layer.get_config())
    return layer.__class__.from_config(layer.get_config())


def fused_twin(model: keras.Model) -> keras.Model:
    """The model to fit: `model` itself where no LSTM layer is `fusable`, else a clone with
    `FusedLSTM` layers and `model`'s weights (not compiled)."""
    if not any(isinstance(layer, keras.layers.LSTM) and fusable(layer) for layer in model.layers):
        return model
    twin = keras.models.clone_model(model, clone_function=_swap_lstm)
    twin.set_weights(model.get_weights())
    # The dropout layers' seed generators too: the twin draws the masks `model` would have.
    for source, target in zip(extra_variables(model), extra_variables(twin), strict=True):
        target.assign(source.value)
    return twin
