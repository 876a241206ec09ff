"""pipeline/lstm/model.py: the two architectures' shapes and names, and saving and loading."""

import zipfile

import numpy as np
import pytest

from pipeline.core.errors import PipelineError
from pipeline.lstm.builders import ModelShape, build_sequence_model, build_tutorial_model
from pipeline.lstm.model import MEMBER_CAPS, architecture_of, load_model, save_model, save_weights

VOCAB = 12


def test_architecture_of_a_built_model():
    sequence = build_sequence_model(VOCAB, ModelShape(embedding_dim=4, units=8, layers=1))
    tutorial = build_tutorial_model(VOCAB, 50, ModelShape(embedding_dim=4, units=8, layers=1))
    assert architecture_of(sequence) == "sequence"
    assert architecture_of(tutorial) == "tutorial"


def test_weights_saved_in_memory_load_back_as_keras_saved_them(tmp_path):
    model = build_sequence_model(VOCAB, ModelShape(embedding_dim=4, units=8, layers=1))
    save_weights(model, tmp_path / "ours.weights.h5")
    other = build_sequence_model(VOCAB, ModelShape(embedding_dim=4, units=8, layers=1))
    other.load_weights(tmp_path / "ours.weights.h5")
    for mine, theirs in zip(model.get_weights(), other.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_a_saved_model_loads_and_a_member_over_its_cap_is_refused_unread(tmp_path):
    model = build_sequence_model(VOCAB, ModelShape(embedding_dim=4, units=8, layers=1))
    save_model(model, tmp_path / "model.keras")
    assert architecture_of(load_model(tmp_path / "model.keras")) == "sequence"
    with zipfile.ZipFile(tmp_path / "bomb.keras", "w", zipfile.ZIP_DEFLATED) as bomb:
        bomb.writestr("config.json", b" " * (MEMBER_CAPS["config.json"] + 1))
    with pytest.raises(PipelineError, match="member 'config.json' is 16777217 bytes, over"):
        load_model(tmp_path / "bomb.keras")
