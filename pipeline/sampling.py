"""Fast, reproducible text generation from a trained sequence model.

The LSTM cells of the trained model are stepped one character at a time with their state
carried forward, so each new character costs one cell update, not a pass over the whole window.
The whole loop (prompt priming, sampling, feeding back) is one compiled `tf.function` with a
`tf.while_loop` inside, and a batch of prompts is generated at once.

Sampling: temperature (0 means greedy), then optional top-k and top-p (nucleus) filtering, then a
stateless categorical draw seeded by `(seed, step)`, so the same seed gives the same text.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from pipeline.errors import PipelineError
from pipeline.model import EMBEDDING, LOGITS, lstm_name


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


class Sampler:
    """Generates text from a sequence model built by `pipeline.model.build_sequence_model`."""

    def __init__(self, model: keras.Model, vocabulary: list[str]) -> None:
        self.model = model
        self.vocabulary = vocabulary
        self.index = {char: position for position, char in enumerate(vocabulary)}
        self.embedding = model.get_layer(EMBEDDING)
        lstm_layers = [layer for layer in model.layers if layer.name.startswith("lstm_")]
        if not lstm_layers or lstm_layers[0].name != lstm_name(0):
            raise PipelineError(f"model {model.name!r} has no sequence LSTM layers to sample from")
        self.cells = [layer.cell for layer in lstm_layers]
        self.dense = model.get_layer(LOGITS)
        self.compute_dtype = self.embedding.compute_dtype
        self._generate = tf.function(self._generate_ids, reduce_retracing=True)

    def encode_prompt(self, prompt: str) -> np.ndarray:
        if not prompt:
            raise PipelineError("the prompt is empty: give at least one character")
        unknown = sorted(set(prompt) - self.index.keys())
        if unknown:
            raise PipelineError(
                f"prompt characters not in the model's vocabulary: {''.join(unknown)!r} "
                f"(the vocabulary is {''.join(self.vocabulary)!r})"
            )
        return np.array([self.index[char] for char in prompt], dtype=np.int32)

    def _step(self, ids: tf.Tensor, states: list[list[tf.Tensor]]) -> tuple[tf.Tensor, list]:
        x = self.embedding(ids)  # (batch, embedding_dim)
        new_states = []
        for cell, state in zip(self.cells, states, strict=True):
            x, state = cell(x, state, training=False)  # (batch, units)
            new_states.append(list(state))
        return self.dense(x), new_states  # (batch, vocab) float32

    def _generate_ids(
        self, prompts: tf.Tensor, length: tf.Tensor, temperature: tf.Tensor, top_k: tf.Tensor,
        top_p: tf.Tensor, seed: tf.Tensor,
    ) -> tf.Tensor:
        batch = tf.shape(prompts)[0]
        states = [
            [tf.zeros((batch, cell.units), self.compute_dtype) for _ in range(2)]
            for cell in self.cells
        ]
        # Prime the state on every prompt character but the last, which feeds the first step.
        for position in tf.range(tf.shape(prompts)[1] - 1):
            _, states = self._step(prompts[:, position], states)
        last = prompts[:, -1]
        output = tf.TensorArray(tf.int32, size=length)
        for step in tf.range(length):
            logits, states = self._step(last, states)
            if temperature > 0:
                logits = filter_logits(logits / temperature, top_k, top_p)
                draw_seed = tf.stack([seed, tf.cast(step, tf.int64)])
                last = tf.random.stateless_categorical(logits, 1, draw_seed, dtype=tf.int32)[:, 0]
            else:
                last = tf.argmax(logits, axis=-1, output_type=tf.int32)
            output = output.write(step, last)
        return tf.transpose(output.stack())  # (batch, length)

    def generate(self, prompts: list[str], length: int, settings: SamplingSettings) -> list[str]:
        """One continuation of `length` characters per prompt (prompts must be equally long)."""
        if length < 1:
            raise PipelineError(f"length must be at least 1, got {length}")
        encoded = [self.encode_prompt(prompt) for prompt in prompts]
        if len({len(ids) for ids in encoded}) != 1:
            raise PipelineError("prompts of one batch must have the same length")
        ids = self._generate(
            tf.constant(np.stack(encoded)), tf.constant(length, tf.int32),
            tf.constant(settings.temperature, tf.float32), tf.constant(settings.top_k, tf.int32),
            tf.constant(settings.top_p, tf.float32), tf.constant(settings.seed, tf.int64),
        ).numpy()
        return ["".join(self.vocabulary[i] for i in row) for row in ids]
