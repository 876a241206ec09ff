"""pipeline/generation/decoding.py: top-k and top-p filtering, and the bounds of every sampling
setting."""

import numpy as np
import pytest
import tensorflow as tf

from pipeline.core.errors import PipelineError
from pipeline.generation.decoding import SamplingSettings, filter_logits


def test_filter_logits_top_k_and_top_p():
    logits = tf.math.log(tf.constant([[0.5, 0.3, 0.15, 0.05]]))
    top2 = filter_logits(logits, tf.constant(2), tf.constant(1.0)).numpy()
    assert np.isfinite(top2).tolist() == [[True, True, False, False]]
    nucleus = filter_logits(logits, tf.constant(0), tf.constant(0.7)).numpy()
    assert np.isfinite(nucleus).tolist() == [[True, True, False, False]]
    everything = filter_logits(logits, tf.constant(0), tf.constant(1.0)).numpy()
    assert np.isfinite(everything).all()


def test_top_p_one_keeps_every_token_even_when_float32_rounds_the_mass_to_one():
    logits = tf.constant([[10.0, 0.0, -8.0, -9.0, -10.0]])
    assert np.isfinite(filter_logits(logits, tf.constant(0), tf.constant(1.0)).numpy()).all()


def test_a_token_whose_preceding_mass_equals_top_p_is_left_out():
    logits = tf.constant([[2.0, 1.0, 0.0]])
    first = float(tf.nn.softmax(logits)[0, 0])  # the mass before the second token, as computed
    kept = np.isfinite(filter_logits(logits, tf.constant(0), tf.constant(first)).numpy())
    assert kept.tolist() == [[True, False, False]]
    just_above = np.nextafter(np.float32(first), np.float32(1))
    kept = np.isfinite(filter_logits(logits, tf.constant(0), tf.constant(just_above)).numpy())
    assert kept.tolist() == [[True, True, False]]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"top_p": 0.0}, "top-p must be in"),
        ({"top_p": 1.5}, "top-p must be in"),
        ({"top_p": float("nan")}, "top-p must be in"),
        ({"top_k": -1}, "top-k must be between 0"),
        ({"top_k": 2**31}, "top-k must be between 0 .off. and 2147483647"),
        ({"temperature": -1.0}, "temperature must be a finite number >= 0"),
        (
            {"temperature": float("nan")},
            "temperature must be a finite number >= 0 .0 = greedy., got nan",
        ),
        (
            {"temperature": float("inf")},
            "temperature must be a finite number >= 0 .0 = greedy., got inf",
        ),
        ({"seed": 2**63}, "seed must be between -9223372036854775808 and 9223372036854775807"),
        ({"seed": -(2**63) - 1}, "seed must be between"),
    ],
)
def test_bad_sampling_settings(settings, message):
    with pytest.raises(PipelineError, match=message):
        SamplingSettings(**settings)
