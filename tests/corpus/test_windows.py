"""pipeline/corpus/windows.py: window counts and the contiguous split."""

import numpy as np
import pytest

from pipeline.core.errors import PipelineError
from pipeline.corpus.windows import count_windows, split_ids, window_starts


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


def test_a_split_of_exactly_one_window_is_enough_and_one_less_is_refused():
    # 100 ids, 0.1 + 0.1: validation and test get 10 characters each; seq_len 9 needs 10.
    train, val, test = split_ids(np.arange(100, dtype=np.uint8), 0.1, 0.1, 9)
    assert (len(train), len(val), len(test)) == (80, 10, 10)
    with pytest.raises(PipelineError, match=r"validation split has 10 characters.*= 11\)"):
        split_ids(np.arange(100, dtype=np.uint8), 0.1, 0.1, 10)
