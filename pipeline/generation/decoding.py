"""How the next character is chosen: temperature (0 = greedy), top-k and top-p (nucleus) filtering,
and a stateless categorical draw seeded by (seed, step)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from pipeline.core.errors import PipelineError

INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float = 1.0  # 0 = greedy (argmax)
    top_k: int = 0  # 0 = no top-k filtering
    top_p: float = 1.0  # 1.0 = no nucleus filtering
    seed: int = 0

    def __post_init__(self) -> None:
        # `not 0 <= x` also catches NaN, which every comparison answers False: a NaN temperature
        # would otherwise fall through to greedy and an infinite one to a uniform draw.
        if not 0 <= self.temperature < math.inf:
            message = (
                f"temperature must be a finite number >= 0 (0 = greedy), got {self.temperature}"
            )
            raise PipelineError(message)
        if not 0 <= self.top_k <= INT32_MAX:  # the compiled sampler holds it as an int32
            raise PipelineError(f"top-k must be between 0 (off) and {INT32_MAX}, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise PipelineError(f"top-p must be in (0, 1], got {self.top_p}")
        if not -(2**63) <= self.seed < 2**63:  # the stateless draw's seed is an int64
            raise PipelineError(f"seed must be between {-(2**63)} and {2**63 - 1}, got {self.seed}")


def filter_logits(logits: tf.Tensor, top_k: tf.Tensor, top_p: tf.Tensor) -> tf.Tensor:
    """Set to -inf every logit outside the top-k and outside the top-p probability mass."""
    vocab = tf.shape(logits)[-1]
    k = tf.where(top_k > 0, tf.minimum(top_k, vocab), vocab)
    sorted_logits = tf.sort(logits, axis=-1, direction="DESCENDING")  # (batch, vocab)
    kth_value = tf.gather(sorted_logits, k - 1, axis=-1)[:, None]
    probabilities = tf.nn.softmax(sorted_logits, axis=-1)
    # Keep a token while the mass of the tokens ranked above it is still below top_p; at 1.0
    # keep every token: in float32 the mass before the unlikeliest ones rounds to 1.0 (logits
    # [10, 0, -8, -9, -10] would keep 2 of 5), and 1.0 means no nucleus filtering.
    mass_before = tf.cumsum(probabilities, axis=-1, exclusive=True)
    inside = (mass_before < top_p) | (top_p >= 1.0)
    kept = tf.where(inside, sorted_logits, tf.fill(tf.shape(sorted_logits), np.inf))
    nucleus_floor = tf.reduce_min(kept, axis=-1, keepdims=True)
    floor = tf.maximum(kth_value, nucleus_floor)
    return tf.where(logits >= floor, logits, tf.fill(tf.shape(logits), -np.inf))


def draw_seed(seed: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
    """The stateless draw's seed: by the absolute step, so chunked (streamed) output equals one
    long call."""
    return tf.stack([seed, tf.cast(step, tf.int64)])


def choose_next(  # noqa: PLR0913, PLR0917
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
        return tf.random.stateless_categorical(logits, 1, draw_seed(seed, step), dtype=tf.int32)[
            :, 0
        ]
    return tf.argmax(logits, axis=-1, output_type=tf.int32)


def choose_next_gumbel(  # noqa: PLR0913, PLR0917
    logits: tf.Tensor,
    step: tf.Tensor,
    temperature: tf.Tensor,
    top_k: tf.Tensor,
    top_p: tf.Tensor,
    seed: tf.Tensor,
) -> tf.Tensor:
    """`choose_next` for XLA: the same filtering, and for the draw the Gumbel-max trick, the
    argmax of the filtered logits plus Gumbel noise made from a stateless uniform draw seeded by
    `(seed, step)`. That is an exact sample of the softmax, as the categorical draw is, and
    unlike TensorFlow's categorical op XLA compiles it, so the sampler's whole loop runs as one
    compiled program (see `generation/sampler.py`). Another draw than `choose_next`'s, from the
    same distribution: the same seed gives other text."""
    if temperature > 0:
        logits = filter_logits(logits / temperature, top_k, top_p)
        # In [tiny, 1): both logarithms stay finite, and -inf logits (filtered out) stay -inf.
        uniform = tf.random.stateless_uniform(
            tf.shape(logits), draw_seed(seed, step), minval=np.finfo(np.float32).tiny, maxval=1.0
        )
        gumbel = -tf.math.log(-tf.math.log(uniform))
        return tf.argmax(tf.cast(logits, tf.float32) + gumbel, axis=-1, output_type=tf.int32)
    return tf.argmax(logits, axis=-1, output_type=tf.int32)
