import numpy as np
import pytest

from pipeline.config import EncodeParams
from pipeline.encode import (
    build_vocabulary,
    count_windows,
    decode_ids,
    encode_corpus,
    encode_text,
    split_ids,
    window_starts,
)
from pipeline.errors import PipelineError


def test_vocabulary_is_sorted_and_stable():
    assert build_vocabulary("banana\n") == ["\n", "a", "b", "n"]
    assert build_vocabulary("nab\nana") == build_vocabulary("banana\n")


def test_encode_and_decode_round_trip():
    vocabulary = build_vocabulary("fair is foul")
    ids = encode_text("foul is fair", vocabulary)
    assert ids.dtype == np.uint8
    assert decode_ids(ids, vocabulary) == "foul is fair"


def test_encode_text_rejects_unknown_characters():
    with pytest.raises(PipelineError, match="not in the vocabulary: 'z'"):
        encode_text("az", ["a"])


@pytest.mark.parametrize(
    ("length", "seq_len", "stride", "expected"),
    [(10, 4, 1, 6), (10, 4, 5, 2), (5, 4, 1, 1), (4, 4, 1, 0), (11, 4, 3, 3)],
)
def test_count_windows(length, seq_len, stride, expected):
    assert count_windows(length, seq_len, stride) == expected
    starts = window_starts(length, seq_len, stride)
    assert len(starts) == expected
    assert all(start + seq_len + 1 <= length for start in starts)


def test_split_is_contiguous_and_complete():
    ids = np.arange(100, dtype=np.uint8)
    train, val, test = split_ids(ids, 0.2, 0.1, 5)
    assert train.tolist() == list(range(70))
    assert val.tolist() == list(range(70, 90))
    assert test.tolist() == list(range(90, 100))


def test_split_refuses_a_corpus_shorter_than_a_window():
    with pytest.raises(PipelineError, match="validation split has 2 characters"):
        split_ids(np.zeros(40, dtype=np.uint8), 0.05, 0.5, 5)
    with pytest.raises(PipelineError, match="test split has 2 characters"):
        split_ids(np.zeros(20, dtype=np.uint8), 0.5, 0.1, 5)


def test_encode_corpus_spec_counts_windows_per_split():
    text = "abcdefghij" * 10
    vocabulary, train, val, test, spec = encode_corpus(
        text, EncodeParams(seq_len=9, stride=5, val_fraction=0.2, test_fraction=0.2)
    )
    assert len(vocabulary) == 10
    assert (spec.train_chars, spec.val_chars, spec.test_chars) == (60, 20, 20)
    assert spec.train_windows == count_windows(60, 9, 5)
    # held-out windows never overlap, so every held-out character is scored once
    assert spec.val_windows == spec.test_windows == 2
    assert decode_ids(np.concatenate([train, val, test]), vocabulary) == text


def test_the_fractions_must_leave_training_text():
    with pytest.raises(ValueError, match="must leave some text for training"):
        EncodeParams(seq_len=9, stride=5, val_fraction=0.5, test_fraction=0.5)
