"""Property tests (Hypothesis): encoding round trips, sampling and serving settings, and the
readers of hostile input (URLs in messages, vocab.json, encoded ids).

Generated inputs either work, with the stated property, or fail with the project's one-line
`PipelineError`, never another exception.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pipeline.core.errors import PipelineError
from pipeline.core.urls import redact_text, redact_url
from pipeline.corpus.encoded import check_ids
from pipeline.corpus.vocabulary import build_vocabulary, decode_ids, encode_text, read_vocabulary
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


# --- the parsers of hostile input: URLs in messages, vocab.json, the encoded ids ------------------

SECRET = st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=6, max_size=12)
MESSAGE_TEXT = st.text(st.characters(codec="ascii", exclude_characters="@?#&=/"), max_size=20)


@settings(max_examples=300, deadline=None)
@given(
    before=MESSAGE_TEXT,
    after=MESSAGE_TEXT,
    secret=SECRET,
    where=st.sampled_from(["user", "password", "query", "path-query"]),
    scheme=st.sampled_from(["http", "https", "postgresql", "s3"]),
)
def test_no_secret_of_a_url_survives_redaction(before, after, secret, where, scheme):  # noqa: PLR0913, PLR0917
    url = {
        "user": f"{scheme}://{secret}@host:5000/api",
        "password": f"{scheme}://alice:{secret}@host/api/",
        "query": f"{scheme}://host/f.txt?a=1&token={secret}",
        "path-query": f"/api/2.0/x?token={secret}",
    }[where]
    assume(secret not in before + after)  # a secret only in the URL
    message = f"{before} {url} {after}"
    assert secret not in redact_text(message)
    if where != "path-query":
        assert secret not in redact_url(url)


@settings(max_examples=200, deadline=None)
@given(
    content=st.binary(max_size=200)
    | st.text(max_size=200).map(str.encode)
    | st.builds(
        lambda chars: json.dumps({"chars": chars}).encode(),
        st.lists(st.text(max_size=2), max_size=20) | st.just([[]] * 3),
    )
)
def test_any_vocab_json_is_read_or_refused_in_one_line(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("vocab") / "vocab.json"
    path.write_bytes(content)
    try:
        chars = read_vocabulary(path)
    except PipelineError as error:
        assert "\n" not in str(error) and "re-run `dvc repro encode`" in str(error)
        return
    assert chars and len(set(chars)) == len(chars) and all(len(c) == 1 for c in chars)


IDS = st.one_of(
    st.lists(st.integers(-(2**31), 2**31), max_size=40).map(lambda v: np.array(v, dtype=np.int64)),
    st.lists(st.floats(allow_nan=True), max_size=40).map(lambda v: np.array(v, dtype=np.float64)),
    st.lists(st.integers(0, 255), max_size=40).map(lambda v: np.array(v, dtype=np.uint8)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ids=IDS, vocab_size=st.integers(1, 300))
def test_any_id_array_is_accepted_only_when_every_id_indexes_the_vocabulary(ids, vocab_size):
    try:
        check_ids(Path("test_ids.npy"), ids, vocab_size, len(ids))
    except PipelineError as error:
        assert "re-run `dvc repro encode`" in str(error)
        return
    assert ids.dtype.kind in "ui" and all(0 <= int(i) < vocab_size for i in ids)
