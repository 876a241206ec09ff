"""The model builders: the sequence model (embedding, stacked LSTM, logits at every position) and
the tutorial's window model, from a `ModelShape`."""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

from pipeline.core.config import TrainParams
from pipeline.lstm.datasets import TUTORIAL_WINDOW
from pipeline.lstm.model import EMBEDDING, LOGITS, lstm_name


@dataclass(frozen=True)
class ModelShape:
    """What the builders need to know: layer sizes and the dropout rates (which change no shape
    but are part of the saved model). Training builds it from `TrainParams` (`train.model_shape`);
    the dropout defaults of 0 suit a model built only to be run."""

    embedding_dim: int  # the sequence model's; the tutorial model has no embedding
    units: int  # per LSTM layer
    layers: int
    dropout: float = 0.0  # after each LSTM layer
    embedding_dropout: float = 0.0  # on the embedded inputs (sequence model)


def build_sequence_model(
    vocab_size: int, shape: ModelShape, stateful_batch: int = 0
) -> keras.Model:
    """`stateful_batch` > 0: the training twin for `train.stateful`, whose LSTM layers keep their
    last state for the next batch of exactly that many rows. Its weights are those of the plain
    model (the state is not a weight), which is what gets saved."""
    ids = keras.Input(batch_shape=(stateful_batch or None, None), dtype="int32", name="ids")
    x = layers.Embedding(vocab_size, shape.embedding_dim, name=EMBEDDING)(ids)
    if shape.embedding_dropout:
        x = layers.Dropout(shape.embedding_dropout, name="embedding_dropout")(x)
    for index in range(shape.layers):
        lstm = layers.LSTM(
            shape.units, return_sequences=True, stateful=bool(stateful_batch), name=lstm_name(index)
        )
        x = lstm(x)
        x = layers.Dropout(shape.dropout, name=f"dropout_{index}")(x)  # (batch, time, units)
    # float32 logits even under a mixed-precision policy, so the softmax and loss stay stable.
    logits = layers.Dense(vocab_size, dtype="float32", name=LOGITS)(x)  # (batch, time, vocab)
    return keras.Model(ids, logits, name="charlstm_sequence")


def build_tutorial_model(vocab_size: int, window: int, shape: ModelShape) -> keras.Model:
    scaled = keras.Input(shape=(window, 1), dtype="float32", name="scaled_ids")
    x = scaled
    for index in range(shape.layers):
        last = index == shape.layers - 1
        x = layers.LSTM(shape.units, return_sequences=not last, name=lstm_name(index))(x)
        x = layers.Dropout(shape.dropout, name=f"dropout_{index}")(x)
    logits = layers.Dense(vocab_size, dtype="float32", name=LOGITS)(x)  # (batch, vocab)
    return keras.Model(scaled, logits, name="charlstm_tutorial")


def model_shape(params: TrainParams) -> ModelShape:
    """The builders' view of the training settings."""
    return ModelShape(
        embedding_dim=params.embedding_dim,
        units=params.units,
        layers=params.layers,
        dropout=params.dropout,
        embedding_dropout=params.embedding_dropout,
    )


def build_model(vocab_size: int, params: TrainParams, stateful_batch: int = 0) -> keras.Model:
    if params.architecture == "tutorial":
        return build_tutorial_model(vocab_size, TUTORIAL_WINDOW, model_shape(params))
    return build_sequence_model(vocab_size, model_shape(params), stateful_batch)
