"""The trained model into the open MLflow run: the Keras model and the servable generator, each
logged under its registered name (`charlstm-macbeth`, `charlstm-macbeth-generator`) and
registered, unless a version was already logged from the same bytes (an identical re-run), then
the champion decision (`tracking/registry.py`)."""

from __future__ import annotations

from pathlib import Path

import keras
import mlflow
import numpy as np
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec

from pipeline.core.config import Params
from pipeline.core.hashing import hash_file
from pipeline.tracking import registry
from pipeline.tracking.generator import log_generator


def model_signature(model: keras.Model) -> ModelSignature:
    """The Keras model's input and output tensors, any batch size (and length)."""
    input_shape = (-1, *[-1 if d is None else d for d in model.input_shape[1:]])
    output_shape = (-1, *[-1 if d is None else d for d in model.output_shape[1:]])
    input_dtype = np.int32 if model.inputs[0].dtype == "int32" else np.float32
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(input_dtype), input_shape)]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), output_shape)]),
    )


def registered_names(params: Params) -> tuple[str, str]:
    """The registered names of the Keras model and of its generator."""
    name = params.mlflow.registered_model
    return name, f"{name}-generator"


def log_models(
    params: Params, model: keras.Model, model_path: Path, vocab_path: Path
) -> dict[str, str]:
    """Log both models into the active run; return the versions registered ({name: version}),
    or {} when the model file is byte for byte an already registered version (the run then
    records which, see `registry.record_duplicate`)."""
    name, generator_name = registered_names(params)
    digest = hash_file(model_path)
    existing = registry.registered_version(name, digest)
    register = existing is None
    keras_model = mlflow.keras.log_model(
        model,
        name=name,
        signature=model_signature(model),
        registered_model_name=name if register else None,
    )
    generator = log_generator(model_path, vocab_path, generator_name, register)
    if existing is not None:
        registry.record_duplicate(existing)
        return {}
    versions = {
        name: str(keras_model.registered_model_version),
        generator_name: str(generator.registered_model_version),
    }
    registry.tag_versions(versions, {registry.MODEL_TAG: digest})
    return versions
