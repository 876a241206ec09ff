"""A tiny untrained generator: a sequence model over ten characters, its vocabulary, and an MLflow
store where it is logged and registered (as train logs the real one)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import keras
import mlflow

from pipeline.lstm.builders import ModelShape, build_sequence_model
from pipeline.tracking.generator import log_generator

VOCABULARY = list("\n abcdefgh")
NAME = "tiny-generator"  # its registered model


def save_tiny_model(path: Path) -> None:
    """The same untrained weights every time (seeded)."""
    keras.utils.set_random_seed(0)
    model = build_sequence_model(len(VOCABULARY), ModelShape(embedding_dim=8, units=16, layers=1))
    model.save(path)


def write_vocabulary(path: Path) -> None:
    path.write_text(json.dumps({"chars": VOCABULARY}))


@contextlib.contextmanager
def generator_store(folder: Path) -> Iterator[str]:
    """A SQLite store in `folder` whose registry holds version 1 of `NAME`; yields its URI, set
    as MLflow's tracking URI until the block ends."""
    save_tiny_model(folder / "model.keras")
    write_vocabulary(folder / "vocab.json")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    try:
        experiment = mlflow.create_experiment("serving", (folder / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=experiment):
            log_generator(folder / "model.keras", folder / "vocab.json", NAME)
        yield uri
    finally:
        mlflow.set_tracking_uri(None)  # back to the default resolution, not a pinned copy of it


def check_texts(texts: list[str], length: int) -> None:
    """Each text is `length` characters of the vocabulary."""
    assert all(len(text) == length and set(text) <= set(VOCABULARY) for text in texts), texts
