"""pipeline/corpus/encoded.py: the one reader of data/encoded/, and its one-line refusals."""

import json
from dataclasses import asdict

import numpy as np
import pytest

from pipeline.core import files
from pipeline.core.config import EncodeParams
from pipeline.core.errors import PipelineError
from pipeline.corpus.encoded import WARMUP_CHARS, heldout_split, load_encoded
from pipeline.encode import encode_corpus
from tests.support.corpora import TEXT
from tests.support.params import committed

RERUN = "re-run `dvc repro encode`"


@pytest.fixture
def encoded(tmp_path):
    """data/encoded/ as the encode stage writes it, for the tiny corpus."""
    params = committed(EncodeParams, seq_len=20, stride=10, val_fraction=0.2, test_fraction=0.1)
    vocabulary, train, val, test, spec = encode_corpus(TEXT, params)
    folder = tmp_path / "encoded"
    folder.mkdir()
    for split, ids in (("train", train), ("val", val), ("test", test)):
        files.save_array(folder / f"{split}_ids.npy", ids)
    files.write_json(folder / "vocab.json", {"chars": vocabulary})
    files.write_json(folder / "windows.json", asdict(spec))
    return folder


def test_load_encoded_reads_back_what_encode_wrote(encoded):
    data = load_encoded(encoded)
    assert data.vocabulary == sorted(set(TEXT))
    ids = np.concatenate([data.train_ids, data.val_ids, data.test_ids])
    assert "".join(data.vocabulary[i] for i in ids) == TEXT
    assert data.spec.vocab_size == len(data.vocabulary)


def test_ids_beyond_the_vocabulary_are_refused(encoded):
    chars = json.loads((encoded / "vocab.json").read_text())["chars"]
    files.write_json(encoded / "vocab.json", {"chars": chars[:-1]})
    with pytest.raises(PipelineError, match=f"ids and vocabulary disagree .*; {RERUN}"):
        load_encoded(encoded)


def test_ids_outside_the_vocabulary_are_refused_wherever_loaded(encoded):
    test_ids = files.load_array(encoded / "test_ids.npy")
    files.save_array(encoded / "test_ids.npy", np.full(len(test_ids), -1, dtype=np.int64))
    with pytest.raises(
        PipelineError, match=r"ids from -1 to -1 are outside the vocabulary's 0\.\."
    ):
        load_encoded(encoded)


@pytest.mark.parametrize(
    ("ids", "match"),
    [
        (np.array([], dtype=np.uint8), "0 ids, but windows.json says"),
        (np.array([np.nan, 1.0]), "ids must be a 1-D array of integers, got float64"),
        (np.zeros((2, 3), dtype=np.uint8), "got uint8 of shape 2x3"),
        (np.array([True, False]), "got bool"),
    ],
    ids=["empty", "nan-floats", "2-d", "bool"],
)
def test_ids_of_the_wrong_kind_are_refused(encoded, ids, match):
    files.save_array(encoded / "val_ids.npy", ids)
    with pytest.raises(PipelineError, match=f"val_ids.npy: .*{match}.*{RERUN}"):
        load_encoded(encoded)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"\xff\xfe{}", "not UTF-8 at byte 0"),
        (b"[" * 30_000 + b"]" * 30_000, "nested deeper than"),
        (b"[1, 2]", "argument after \\*\\* must be a mapping"),
        (b'{"seq_len": 1}', "missing"),
        (None, "seq_len must be a non-negative integer, got 'x'"),
        (b"{" + b" " * 70_000 + b"}", "over the cap"),
    ],
    ids=["utf-16", "deep", "list", "missing-fields", "string-field", "huge"],
)
def test_a_bad_windows_json_is_one_line(encoded, content, match):
    path = encoded / "windows.json"
    if content is None:
        content = json.dumps({**json.loads(path.read_text()), "seq_len": "x"}).encode()
    path.write_bytes(content)
    with pytest.raises(PipelineError, match=f"windows.json: .*{match}.*{RERUN}"):
        load_encoded(encoded)


def test_heldout_splits_come_with_the_text_just_before_them(encoded):
    data = load_encoded(encoded)
    ids, warmup = heldout_split(data, "validation")
    np.testing.assert_array_equal(ids, data.val_ids)
    np.testing.assert_array_equal(warmup, data.train_ids[-WARMUP_CHARS:])
    ids, warmup = heldout_split(data, "test")
    np.testing.assert_array_equal(ids, data.test_ids)
    np.testing.assert_array_equal(warmup, data.val_ids[-WARMUP_CHARS:])
    with pytest.raises(ValueError, match="unknown split 'train'"):
        heldout_split(data, "train")
