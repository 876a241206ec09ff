"""Fast, reproducible text generation from a trained sequence model.

The LSTM cells of the trained model are stepped one character at a time with their state
carried forward, so each new character costs one cell update, not a pass over the whole window.
The whole loop (prompt priming, sampling, feeding back) is one compiled `tf.function` with a
`tf.while_loop` inside, and a batch of prompts is generated at once. For the sequence model and up
to `jit_max_batch` rows the sampling loop is also compiled by XLA: it then runs as one native
program instead of some 60 small TensorFlow ops per character, about 3x faster for one stream on a
CPU (see `bench/generate_speed.py`). XLA compiles one program per shape (seconds, once per
process), so the number of characters per call is rounded up to a power of two (`bucket`): a few
programs serve every request length, one per batch size. A batch of more than `jit_max_batch`
rows runs on the graph, the former path, with its former text.

Sampling: temperature (0 means greedy), then optional top-k and top-p (nucleus) filtering, then a
stateless draw seeded by `(seed, step)`, so the same seed gives the same text: TensorFlow's
categorical draw on the graph (`decoding.choose_next`), the Gumbel-max trick under XLA
(`decoding.choose_next_gumbel`, which XLA compiles), an exact sample of the same distribution
but another text than the graph's for the same seed.

Prompts of different lengths run as one batch: they are padded on the left, and a row's state
only starts to change at its first real character, so each row continues exactly its own prompt.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from pipeline.core.errors import PipelineError
from pipeline.generation.decoding import SamplingSettings, choose_next, choose_next_gumbel
from pipeline.lstm.model import EMBEDDING, LOGITS, architecture_of, lstm_name


class Sampler:
    """Batched, compiled generation. Subclasses say how a model turns its state into logits.

    The state is whatever the model needs to predict the next character: the carried LSTM
    states for the sequence model, the last 50 ids for the tutorial model.
    """

    pad_id = 0  # fills the left of shorter prompts in a batch (the window sampler reads it)
    jit_compile = False  # whether XLA compiles the sampling loop (its output size bucketed)
    # Up to this many rows; more run on TensorFlow's graph, where the matrix products of a big
    # batch are as fast and a call costs no fixed XLA overhead (measured: batch 64 x 300
    # characters 0.87x the graph's speed under XLA, batch 16 1.6x, one stream ~3x).
    jit_max_batch = 16

    def __init__(self, model: keras.Model, vocabulary: list[str]) -> None:
        self.model = model
        self.vocabulary = vocabulary
        self.index = {char: position for position, char in enumerate(vocabulary)}
        # Priming reads the prompt once: left to TensorFlow's graph, it costs XLA no compilation
        # per prompt width. Sampling is the long loop.
        self._prime_fn = tf.function(self._prime, reduce_retracing=True)
        self._sample_graph_fn = tf.function(self._sample_ids, reduce_retracing=True)
        self._sample_xla_fn = tf.function(self._sample_ids, reduce_retracing=True, jit_compile=True)

    def _prime(self, prompts: tf.Tensor, lengths: tf.Tensor) -> Any:
        """State after `prompts` (batch, time), left-padded; `lengths` (batch,) are the real
        lengths, so a row's padding must leave its state as if the row started later."""
        raise NotImplementedError

    def _next_logits(self, state: Any) -> tuple[tf.Tensor, Any]:
        raise NotImplementedError

    def _feed(self, state: Any, ids: tf.Tensor) -> Any:
        raise NotImplementedError

    def encode_prompt(self, prompt: str) -> np.ndarray:
        """Prompt -> ids. A letter the vocabulary lacks is lower-cased first (the default corpus
        is lower-cased by the clean stage); any other unknown character is an error."""
        if not prompt:
            raise PipelineError("the prompt is empty: give at least one character")
        prompt = "".join(
            char.lower() if char not in self.index and char.lower() in self.index else char
            for char in prompt
        )
        unknown = sorted(set(prompt) - self.index.keys())
        if unknown:
            raise PipelineError(
                f"prompt characters not in the model's vocabulary: {''.join(unknown)!r} "
                f"(the vocabulary is {''.join(self.vocabulary)!r})"
            )
        return np.array([self.index[char] for char in prompt], dtype=np.int32)

    def _sample_ids(  # noqa: PLR0913, PLR0917
        self,
        state: Any,
        first_step: tf.Tensor,
        length: tf.Tensor,
        capacity: int,
        temperature: tf.Tensor,
        top_k: tf.Tensor,
        top_p: tf.Tensor,
        seed: tf.Tensor,
    ) -> tuple[tf.Tensor, Any]:
        """`length` more ids per row, `(batch, capacity or length)` (only the first `length`
        columns count), plus the state to continue from. `capacity` > 0 is a fixed output size,
        as XLA needs; 0 sizes the output by `length`."""
        output = tf.TensorArray(tf.int32, size=capacity or length, element_shape=[None])
        choose = choose_next_gumbel if capacity else choose_next  # XLA compiles only the first
        for offset in tf.range(length):
            logits, state = self._next_logits(state)
            ids = choose(logits, first_step + offset, temperature, top_k, top_p, seed)
            state = self._feed(state, ids)
            output = output.write(offset, ids)
        return tf.transpose(output.stack()), state

    def stream(
        self, prompts: list[str], length: int, settings: SamplingSettings, chunk: int = 0
    ) -> Iterator[list[str]]:
        """Yield the continuations piece by piece (`chunk` characters at a time; 0 = at once).

        A caller that stops iterating stops the work: nothing runs ahead of the last chunk."""
        if length < 1:
            raise PipelineError(f"length must be at least 1, got {length}")
        if not prompts:
            raise PipelineError("no prompts given: send at least one")
        encoded = [self.encode_prompt(prompt) for prompt in prompts]
        lengths = np.array([len(ids) for ids in encoded], dtype=np.int32)
        shape = (len(encoded), int(lengths.max()))  # (batch, time)
        padded = np.full(shape, self.pad_id, dtype=np.int32)
        for row, ids in enumerate(encoded):
            padded[row, padded.shape[1] - len(ids) :] = ids
        state = self._prime_fn(tf.constant(padded), tf.constant(lengths))
        chunk = chunk or length
        sampling = (
            tf.constant(settings.temperature, tf.float32),
            tf.constant(settings.top_k, tf.int32),
            tf.constant(settings.top_p, tf.float32),
            tf.constant(settings.seed, tf.int64),
        )
        for start in range(0, length, chunk):
            size = min(chunk, length - start)
            jit = self.jit_compile and len(prompts) <= self.jit_max_batch
            capacity = bucket(size) if jit else 0
            sample = self._sample_xla_fn if jit else self._sample_graph_fn
            first, count = tf.constant(start, tf.int32), tf.constant(size, tf.int32)
            ids, state = sample(state, first, count, capacity, *sampling)
            yield ["".join(self.vocabulary[i] for i in row[:size]) for row in ids.numpy()]

    def generate(self, prompts: list[str], length: int, settings: SamplingSettings) -> list[str]:
        """One continuation of `length` characters per prompt, all prompts in one batch."""
        (texts,) = self.stream(prompts, length, settings)
        return texts


def bucket(size: int, smallest: int = 16) -> int:
    """`size` rounded up to a power of two, at least `smallest`: the shapes XLA compiles for."""
    return max(smallest, 1 << (size - 1).bit_length())


class SequenceSampler(Sampler):
    """Steps the trained LSTM cells one character at a time, carrying their state forward, so
    each new character costs one cell update instead of a pass over a whole window; XLA
    compiles its loops."""

    jit_compile = True

    def __init__(self, model: keras.Model, vocabulary: list[str]) -> None:
        super().__init__(model, vocabulary)
        self.embedding = model.get_layer(EMBEDDING)
        lstm_layers = [layer for layer in model.layers if layer.name.startswith("lstm_")]
        self.cells = [layer.cell for layer in lstm_layers]
        self.dense = model.get_layer(LOGITS)
        self.compute_dtype = self.embedding.compute_dtype

    def _step(self, ids: tf.Tensor, states: list[list[tf.Tensor]]) -> tuple[tf.Tensor, list]:
        x = self.embedding(ids)  # (batch, embedding_dim)
        new_states = []
        for cell, state in zip(self.cells, states, strict=True):
            x, new_state = cell(x, state, training=False)  # (batch, units)
            new_states.append(list(new_state))
        return self.dense(x), new_states  # (batch, vocab) float32

    def _prime(
        self, prompts: tf.Tensor, lengths: tf.Tensor
    ) -> tuple[tf.Tensor, list[list[tf.Tensor]]]:
        """Run every prompt character but the last; that one feeds the first sampling step.
        A row keeps its zero state while the position is still in its left padding."""
        batch, time = tf.shape(prompts)[0], tf.shape(prompts)[1]
        states = [
            [tf.zeros((batch, cell.units), self.compute_dtype) for _ in range(2)]
            for cell in self.cells
        ]
        first_real = time - lengths  # (batch,) position of each row's first character
        for position in tf.range(time - 1):
            _, stepped = self._step(prompts[:, position], states)
            started = (position >= first_real)[:, None]  # (batch, 1)
            states = [
                [tf.where(started, new, old) for new, old in zip(new_pair, old_pair, strict=True)]
                for new_pair, old_pair in zip(stepped, states, strict=True)
            ]
        return prompts[:, -1], states

    def _next_logits(self, state: Any) -> tuple[tf.Tensor, Any]:
        last, states = state
        return self._step(last, states)

    def _feed(self, state: Any, ids: tf.Tensor) -> Any:
        return ids, state


class WindowSampler(Sampler):
    """The tutorial's path: the model reads the last `window` ids, scaled to floats, each step.
    Shorter prompts are padded on the left with spaces (or id 0 if there is no space)."""

    def __init__(self, model: keras.Model, vocabulary: list[str]) -> None:
        super().__init__(model, vocabulary)
        self.window = int(model.input_shape[1])
        self.pad_id = self.index.get(" ", 0)

    def _prime(self, prompts: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
        # Shorter prompts arrive left-padded with `pad_id`, as the window pads them anyway.
        del lengths
        batch, length = tf.shape(prompts)[0], tf.shape(prompts)[1]
        padding = tf.fill((batch, tf.maximum(self.window - length, 0)), self.pad_id)
        return tf.concat([padding, prompts], axis=1)[:, -self.window :]  # (batch, window)

    def _next_logits(self, state: Any) -> tuple[tf.Tensor, Any]:
        scaled = tf.cast(state[:, :, None], tf.float32) / len(self.vocabulary)
        return self.model(scaled, training=False), state

    def _feed(self, state: Any, ids: tf.Tensor) -> Any:
        return tf.concat([state[:, 1:], ids[:, None]], axis=1)


def make_sampler(model: keras.Model, vocabulary: list[str]) -> Sampler:
    """The right sampler for a model built by `pipeline.lstm.model`, after checking that the
    vocabulary is the one the model was trained on (one character per output logit)."""
    outputs = model.output_shape[-1]
    if outputs != len(vocabulary):
        raise PipelineError(
            f"the vocabulary has {len(vocabulary)} characters but model {model.name!r} predicts "
            f"{outputs}: they come from different runs; pass the vocab.json the model was "
            "trained with (`--vocab`), or re-run `dvc repro`"
        )
    names = {layer.name for layer in model.layers}
    if EMBEDDING in names:
        return SequenceSampler(model, vocabulary)
    if lstm_name(0) in names and architecture_of(model) == "tutorial":
        return WindowSampler(model, vocabulary)
    raise PipelineError(f"model {model.name!r} is neither a sequence nor a tutorial model")
