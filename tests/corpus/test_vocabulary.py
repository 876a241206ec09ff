"""pipeline/corpus/vocabulary.py: the one reader of vocab.json, and its one-line refusals."""

import numpy as np
import pytest

from pipeline.core.errors import PipelineError
from pipeline.core.paths import VOCAB_FILE
from pipeline.corpus.vocabulary import (
    RERUN,
    build_vocabulary,
    decode_ids,
    encode_text,
    read_vocabulary,
)


def test_read_vocabulary_returns_the_characters_in_id_order(tmp_path):
    path = tmp_path / VOCAB_FILE
    path.write_text('{"chars": ["\\n", " ", "a", "\\u00e9"]}', encoding="utf-8")
    assert read_vocabulary(path) == ["\n", " ", "a", "é"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not found"),
        ("{not json", "not a vocabulary"),
        ('{"letters": ["a"]}', "not a vocabulary"),
        ("[1, 2]", "not a vocabulary"),
        ('{"chars": []}', "list of distinct characters"),
        ('{"chars": "ab"}', "list of distinct characters"),
        ('{"chars": ["a", "a"]}', "list of distinct characters"),
        ('{"chars": ["ab"]}', "list of distinct characters"),
    ],
)
def test_read_vocabulary_refuses_a_bad_file_and_says_what_to_rerun(tmp_path, content, message):
    path = tmp_path / VOCAB_FILE
    if content is not None:
        path.write_text(content)
    with pytest.raises(PipelineError, match=f"{message}.*{RERUN}"):
        read_vocabulary(path)


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
