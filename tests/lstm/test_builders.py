"""pipeline/lstm/builders.py: what each architecture maps to what."""

from pipeline.lstm.builders import ModelShape, build_sequence_model, build_tutorial_model
from pipeline.lstm.model import lstm_name

VOCAB = 12


def test_the_sequence_model_maps_ids_to_logits_at_every_position():
    model = build_sequence_model(VOCAB, ModelShape(embedding_dim=4, units=8, layers=2))
    assert model.input_shape == (None, None)  # (batch, time) of character ids
    assert model.output_shape == (None, None, VOCAB)  # (batch, time, vocab) logits
    names = [layer.name for layer in model.layers]
    assert [lstm_name(0), lstm_name(1)] == [name for name in names if name.startswith("lstm_")]
    assert model.get_layer("logits").dtype_policy.compute_dtype == "float32"


def test_the_tutorial_model_maps_a_window_to_the_next_character():
    model = build_tutorial_model(VOCAB, 50, ModelShape(embedding_dim=4, units=8, layers=2))
    assert model.input_shape == (None, 50, 1)  # (batch, window, 1) scaled ids
    assert model.output_shape == (None, VOCAB)  # (batch, vocab) logits of the next character
