"""Logs the served generator into MLflow: the Keras model and vocabulary as artifacts, and as code
only the modules generation imports."""

from __future__ import annotations

import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
from mlflow.models.model import ModelInfo

from pipeline.core.errors import PipelineError
from pipeline.corpus.vocabulary import read_vocabulary
from pipeline.generation.requests import (
    SIGNATURE,
)

# The modules the generator imports (served -> sampler -> lstm.model -> core.errors and
# core.bounded, and served -> corpus.vocabulary -> core.paths), with their packages; the logged
# model carries only these, as
# the package `pipeline`, so nothing else of the repository ships (not core/config.py: the
# builders take a `ModelShape`). Paths are relative to `pipeline/`.
CARRIED_MODULES = (
    "__init__.py",
    "core/__init__.py",
    "core/bounded.py",
    "core/errors.py",
    "core/native_logs.py",
    "core/paths.py",
    "corpus/__init__.py",
    "corpus/vocabulary.py",
    "generation/__init__.py",
    "generation/decoding.py",
    "generation/requests.py",
    "generation/sampler.py",
    "generation/served.py",
    "lstm/__init__.py",
    "lstm/model.py",
)


# "Models from code" (https://mlflow.org/docs/latest/ml/model/models-from-code/): MLflow runs this
# file to get the model object, instead of unpickling one.
MODEL_CODE = """\
import mlflow

from pipeline.generation.served import TextGenerator

mlflow.models.set_model(TextGenerator())
"""


def serving_requirements() -> list[str]:
    """The installed versions of what the generator imports (the TensorFlow build as installed:
    `tensorflow` or `tensorflow-cpu`)."""
    names = ["mlflow", "keras", "numpy", "pandas"]  # no params schema: no pydantic, PyYAML
    for build in ("tensorflow", "tensorflow-cpu"):
        try:
            metadata.version(build)
        except metadata.PackageNotFoundError:
            continue
        names.append(build)
        break
    return [f"{name}=={metadata.version(name)}" for name in names]


def example_request(vocabulary: list[str]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A small request in the model's own alphabet, stored with the model as its example."""
    prompt = "".join(char for char in "the " if char in vocabulary) or vocabulary[0]
    return pd.DataFrame({"prompt": [prompt]}), {"length": 20, "seed": 1}


def log_generator(
    model_path: Path, vocab_path: Path, registered_model_name: str, register: bool = True
) -> ModelInfo:
    """Log the generator into the active MLflow run, named `registered_model_name`, and register
    it under that name (unless `register` is false).

    MLflow checks the logged model on its example request, so a model that cannot load or
    generate fails here, at training time, not when it is served."""
    for path in (model_path, vocab_path):
        if not path.is_file():
            raise PipelineError(f"{path} not found; run `dvc repro train` first")
    source = Path(__file__).parents[1]  # the package `pipeline`
    with tempfile.TemporaryDirectory() as temporary:
        package = Path(temporary, "pipeline")
        for module in CARRIED_MODULES:
            (package / module).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source / module, package / module)
        model_code = Path(temporary, "generator_model.py")
        model_code.write_text(MODEL_CODE, encoding="utf-8")
        return mlflow.pyfunc.log_model(
            name=registered_model_name,
            python_model=model_code,
            artifacts={"model": str(model_path), "vocab": str(vocab_path)},
            code_paths=[str(package)],
            signature=SIGNATURE,
            input_example=example_request(read_vocabulary(vocab_path)),
            pip_requirements=serving_requirements(),
            registered_model_name=registered_model_name if register else None,
        )
