"""pipeline/lstm/model.py: the two architectures' shapes and names."""

from pipeline.lstm.builders import ModelShape, build_sequence_model, build_tutorial_model
from pipeline.lstm.model import architecture_of

VOCAB = 12


def test_architecture_of_a_built_model():
    sequence = build_sequence_model(VOCAB, ModelShape(embedding_dim=4, units=8, layers=1))
    tutorial = build_tutorial_model(VOCAB, 50, ModelShape(embedding_dim=4, units=8, layers=1))
    assert architecture_of(sequence) == "sequence"
    assert architecture_of(tutorial) == "tutorial"
