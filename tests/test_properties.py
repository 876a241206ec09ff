"""Property tests (Hypothesis): encoding round trips, and sampling and serving settings.

Generated inputs either work, with the stated property, or fail with the project's one-line
`PipelineError`, never another exception.
"""

import math

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.errors import PipelineError
from pipeline.corpus.vocabulary import build_vocabulary, decode_ids, encode_text
from pipeline.corpus.windows import split_ids
from pipeline.generation.decoding import SamplingSettings
from pipeline.generation.requests import budget_from_params, check_work, settings_from_params
from pipeline.generation.sampler import Sampler, make_sampler
from pipeline.lstm.builders import ModelShape, build_sequence_model

VOCABULARY = list("\n abcdefgh")
LATIN_1 = st.characters(max_codepoint=0xFF)
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)
ANY_INT = st.integers(min_value=-(2**70), max_value=2**70)


@settings(max_examples=300, deadline=None)
@given(st.text(LATIN_1, max_size=300) | st.text(max_size=300))
def test_encoding_then_decoding_gives_the_text_back(text):
    vocabulary = build_vocabulary(text)
    ids = encode_text(text, vocabulary)
    assert len(ids) == len(text)
    assert decode_ids(ids, vocabulary) == text
    assert vocabulary == sorted(set(vocabulary))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=100), st.text(max_size=100))
def test_encoding_with_a_foreign_vocabulary_names_the_unknown_characters(text, other):
    vocabulary = build_vocabulary(other)
    try:
        ids = encode_text(text, vocabulary)
    except PipelineError as error:
        unknown = sorted(set(text) - set(vocabulary))
        assert unknown and repr("".join(unknown)) in str(error)
    else:
        assert decode_ids(ids, vocabulary) == text


@settings(max_examples=300, deadline=None)
@given(
    length=st.integers(0, 2000),
    val_fraction=st.floats(0, 1),
    test_fraction=st.floats(0, 1),
    seq_len=st.integers(1, 200),
)
def test_split_is_a_contiguous_partition_or_a_clear_refusal(
    length, val_fraction, test_fraction, seq_len
):
    ids = np.arange(length, dtype=np.int64)
    try:
        train, val, test = split_ids(ids, val_fraction, test_fraction, seq_len)
    except PipelineError as error:
        assert "fewer than one window" in str(error)
        return
    assert np.array_equal(np.concatenate([train, val, test]), ids)
    assert min(len(train), len(val), len(test)) >= seq_len + 1


@settings(max_examples=500, deadline=None)
@given(temperature=ANY_FLOAT, top_k=ANY_INT, top_p=ANY_FLOAT, seed=ANY_INT)
def test_sampling_settings_are_valid_or_refused(temperature, top_k, top_p, seed):
    try:
        chosen = SamplingSettings(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    except PipelineError:
        return
    assert math.isfinite(chosen.temperature) and chosen.temperature >= 0
    assert 0 <= chosen.top_k < 2**31 and 0 < chosen.top_p <= 1 and -(2**63) <= seed < 2**63


@pytest.fixture(scope="module")
def sampler() -> Sampler:
    tf.keras.utils.set_random_seed(0)
    model = build_sequence_model(len(VOCABULARY), ModelShape(embedding_dim=8, units=8, layers=1))
    return make_sampler(model, VOCABULARY)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    prompts=st.lists(st.text(max_size=6), min_size=1, max_size=3),
    temperature=st.floats(0, 5) | ANY_FLOAT,
    top_k=st.integers(0, 12) | ANY_INT,
    top_p=st.floats(0, 1) | ANY_FLOAT,
    seed=st.integers(-(2**63), 2**63 - 1) | ANY_INT,
)
def test_generation_gives_text_in_the_vocabulary_or_a_clear_refusal(  # noqa: PLR0913, PLR0917 (one argument per Hypothesis strategy)
    sampler, prompts, temperature, top_k, top_p, seed
):
    try:
        chosen = SamplingSettings(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
        texts = sampler.generate(prompts, 3, chosen)
    except PipelineError:
        return
    assert len(texts) == len(prompts)
    assert all(len(text) == 3 and set(text) <= set(VOCABULARY) for text in texts)


PARAM_VALUES = st.one_of(ANY_FLOAT, ANY_INT, st.none())


@settings(max_examples=500, deadline=None)
@given(
    params=st.dictionaries(
        st.sampled_from(["length", "temperature", "top_k", "top_p", "seed", "timeout_s"]),
        PARAM_VALUES,
    ),
    rows=st.integers(0, 2000),
    prompt_length=st.integers(1, 3000),
)
def test_served_request_settings_are_valid_or_refused(params, rows, prompt_length):
    """What MLflow hands `predict` after its schema check: numbers of any size, or None."""
    try:
        length, chosen = settings_from_params(params)
        budget = budget_from_params(params, 50.0)
        check_work(["a" * prompt_length] * rows, length)
    except PipelineError:
        return
    assert 1 <= length <= 100_000 and isinstance(chosen, SamplingSettings)
    assert 0 < budget <= 50.0
    assert rows * (prompt_length + length) <= 1_000_000
