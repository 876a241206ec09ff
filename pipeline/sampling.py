"""Fast, reproducible text generation from a trained sequence model.

The LSTM cells of the trained model are stepped one character at a time with their state
carried forward, so each new character costs one cell update, not a pass over the whole window.
The whole loop (prompt priming, sampling, feeding back) is one compiled `tf.function` with a
`tf.while_loop` inside, and a batch of prompts is generated at once.

Sampling: temperature (0 means greedy), then optional top-k and top-p (nucleus) filtering, then a
stateless categorical draw seeded by `(seed, step)`, so the same seed gives the same text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from pipeline.errors import PipelineError
from pipeline.model import EMBEDDING, LOGITS, architecture_of, lstm_name


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float = 1.0  # 0 = greedy (argmax)
    top_k: int = 0  # 0 = no top-k filtering
    top_p: float = 1.0  # 1.0 = no nucleus filtering
    seed: int = 0

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise PipelineError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if self.top_k < 0:
            raise PipelineError(f"top-k must be >= 0 (0 = off), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise PipelineError(f"top-p must be in (0, 1], got {self.top_p}")


def filter_logits(logits: tf.Tensor, top_k: tf.Tensor, top_p: tf.Tensor) -> tf.Tensor:
    """Set to -inf every logit outside the top-k and outside the top-p probability mass."""
    vocab = tf.shape(logits)[-1]
    k = tf.where(top_k > 0, tf.minimum(top_k, vocab), vocab)
    sorted_logits = tf.sort(logits, axis=-1, direction="DESCENDING")  # (batch, vocab)
    kth_value = tf.gather(sorted_logits, k - 1, axis=-1)[:, None]
    probabilities = tf.nn.softmax(sorted_logits, axis=-1)
    # Keep a token while the mass of the tokens ranked above it is still below top_p.
    mass_before = tf.cumsum(probabilities, axis=-1, exclusive=True)
    kept = tf.where(mass_before < top_p, sorted_logits, tf.fill(tf.shape(sorted_logits), np.inf))
    nucleus_floor = tf.reduce_min(kept, axis=-1, keepdims=True)
    floor = tf.maximum(kth_value, nucleus_floor)
    return tf.where(logits >= floor, logits, tf.fill(tf.shape(logits), -np.inf))


def choose_next(
    logits: tf.Tensor,
    step: tf.Tensor,
    temperature: tf.Tensor,
    top_k: tf.Tensor,
    top_p: tf.Tensor,
    seed: tf.Tensor,
) -> tf.Tensor:
    """Next id per row, `(batch,)`: argmax when temperature is 0, else a seeded filtered draw."""
    if temperature > 0:
        logits = filter_logits(logits / temperature, top_k, top_p)
        # Seeded by the absolute step, so chunked (streamed) output equals one long call.
        draw_seed = tf.stack([seed, tf.cast(step, tf.int64)])
        return tf.random.stateless_categorical(logits, 1, draw_seed, dtype=tf.int32)[:, 0]
    return tf.argmax(logits, axis=-1, output_type=tf.int32)


class Sampler:
    """Batched, compiled generation. Subclasses say how a model turns its state into logits.

    The state is whatever the model needs to predict the next character: the carried LSTM
    states for the sequence model, the last 50 ids for the tutorial model.
    """

    def __init__(self, model: keras.Model, vocabulary: list[str]) -> None:
        self.model = model
        self.vocabulary = vocabulary
        self.index = {char: position for position, char in enumerate(vocabulary)}
        self._prime_fn = tf.function(self._prime, reduce_retracing=True)
        self._sample_fn = tf.function(self._sample_ids, reduce_retracing=True)

    def _prime(self, prompts: tf.Tensor) -> Any:
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

    def _sample_ids(
        self,
        state: Any,
        first_step: tf.Tensor,
        length: tf.Tensor,
        temperature: tf.Tensor,
        top_k: tf.Tensor,
        top_p: tf.Tensor,
        seed: tf.Tensor,
    ) -> tuple[tf.Tensor, Any]:
        """`length` more ids per row, `(batch, length)`, plus the state to continue from."""
        output = tf.TensorArray(tf.int32, size=length)
        for offset in tf.range(length):
            logits, state = self._next_logits(state)
            ids = choose_next(logits, first_step + offset, temperature, top_k, top_p, seed)
            state = self._feed(state, ids)
            output = output.write(offset, ids)
        return tf.transpose(output.stack()), state

    def stream(
        self, prompts: list[str], length: int, settings: SamplingSettings, chunk: int = 0
    ) -> Iterator[list[str]]:
        """Yield the continuations piece by piece (`chunk` characters at a time; 0 = at once)."""
        if length < 1:
            raise PipelineError(f"length must be at least 1, got {length}")
        encoded = [self.encode_prompt(prompt) for prompt in prompts]
        if len({len(ids) for ids in encoded}) != 1:
            raise PipelineError("prompts of one batch must have the same length")
        state = self._prime_fn(tf.constant(np.stack(encoded)))
        chunk = chunk or length
        sampling = (
            tf.constant(settings.temperature, tf.float32),
            tf.constant(settings.top_k, tf.int32),
            tf.constant(settings.top_p, tf.float32),
            tf.constant(settings.seed, tf.int64),
        )
        for start in range(0, length, chunk):
            size = tf.constant(min(chunk, length - start), tf.int32)
            ids, state = self._sample_fn(state, tf.constant(start, tf.int32), size, *sampling)
            yield ["".join(self.vocabulary[i] for i in row) for row in ids.numpy()]

    def generate(self, prompts: list[str], length: int, settings: SamplingSettings) -> list[str]:
        """One continuation of `length` characters per prompt (prompts must be equally long)."""
        (texts,) = self.stream(prompts, length, settings)
        return texts


class SequenceSampler(Sampler):
    """Steps the trained LSTM cells one character at a time, carrying their state forward, so
    each new character costs one cell update instead of a pass over a whole window."""

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

    def _prime(self, prompts: tf.Tensor) -> tuple[tf.Tensor, list[list[tf.Tensor]]]:
        """Run every prompt character but the last; that one feeds the first sampling step."""
        batch = tf.shape(prompts)[0]
        states = [
            [tf.zeros((batch, cell.units), self.compute_dtype) for _ in range(2)]
            for cell in self.cells
        ]
        for position in tf.range(tf.shape(prompts)[1] - 1):
            _, states = self._step(prompts[:, position], states)
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

    def _prime(self, prompts: tf.Tensor) -> tf.Tensor:
        batch, length = tf.shape(prompts)[0], tf.shape(prompts)[1]
        padding = tf.fill((batch, tf.maximum(self.window - length, 0)), self.pad_id)
        return tf.concat([padding, prompts], axis=1)[:, -self.window :]  # (batch, window)

    def _next_logits(self, state: Any) -> tuple[tf.Tensor, Any]:
        scaled = tf.cast(state[:, :, None], tf.float32) / len(self.vocabulary)
        return self.model(scaled, training=False), state

    def _feed(self, state: Any, ids: tf.Tensor) -> Any:
        return tf.concat([state[:, 1:], ids[:, None]], axis=1)


def make_sampler(model: keras.Model, vocabulary: list[str]) -> Sampler:
    """The right sampler for a model built by `pipeline.model`."""
    names = {layer.name for layer in model.layers}
    if EMBEDDING in names:
        return SequenceSampler(model, vocabulary)
    if lstm_name(0) in names and architecture_of(model) == "tutorial":
        return WindowSampler(model, vocabulary)
    raise PipelineError(f"model {model.name!r} is neither a sequence nor a tutorial model")
