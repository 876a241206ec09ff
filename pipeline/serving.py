"""The trained model as an MLflow pyfunc text generator, servable without this repository.

`log_generator(model_path, vocab_path, registered_model_name)` logs a `TextGenerator` into the
active MLflow run as `generator` and registers it. The logged model carries the Keras model and
the vocabulary as artifacts, and as code only the pipeline modules that generation imports, so it
serves from anywhere MLflow, TensorFlow and Keras are installed:

    mlflow models serve -m "models:/charlstm-macbeth-generator/1" --env-manager local -p 5001
    curl -s 127.0.0.1:5001/invocations -H 'Content-Type: application/json' -d \
      '{"dataframe_records": [{"prompt": "fair is foul"}], "params": {"length": 200, "seed": 1}}'

Input: a DataFrame with a string column `prompt`. Settings are request `params` shared by every
row (`length`, `temperature`, `top_k`, `top_p`, `seed`; defaults in `PARAMS`). Output: a DataFrame
with a string column `text`, each prompt's continuation. Rows are generated in batches of equal
prompt length, so a row's text depends on the seed, its prompt and its position among the rows
with prompts of that length, as `--num-samples` does in the CLI: send a prompt N times for N
different samples.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.pyfunc import PythonModel, PythonModelContext
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

from pipeline.errors import PipelineError
from pipeline.model import load_model
from pipeline.sampling import Sampler, SamplingSettings, make_sampler

ARTIFACT_NAME = "generator"
MAX_LENGTH = 100_000
MAX_ROWS = 1024

PARAMS = ParamSchema(
    [
        ParamSpec("length", "integer", 200),  # characters generated per prompt
        ParamSpec("temperature", "double", 0.8),  # 0 = greedy
        ParamSpec("top_k", "integer", 0),  # 0 = off
        ParamSpec("top_p", "double", 1.0),  # 1 = off
        ParamSpec("seed", "long", 0),
    ]
)
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", "prompt")]),
    outputs=Schema([ColSpec("string", "text")]),
    params=PARAMS,
)

# The modules the generator imports (serving -> sampling -> model -> config -> errors); the logged
# model carries only these, as the package `pipeline`, so nothing else of the repository ships.
CARRIED_MODULES = ("__init__.py", "errors.py", "config.py", "model.py", "sampling.py", "serving.py")

# "Models from code" (https://mlflow.org/docs/latest/ml/model/models-from-code/): MLflow runs this
# file to get the model object, instead of unpickling one.
MODEL_CODE = """\
import mlflow

from pipeline.serving import TextGenerator

mlflow.models.set_model(TextGenerator())
"""


def read_vocabulary(path: Path) -> list[str]:
    """The characters in id order, from the encode stage's `vocab.json`."""
    try:
        with path.open(encoding="utf-8") as stream:
            chars = json.load(stream)["chars"]
    except (ValueError, KeyError, TypeError) as error:
        message = f"{path}: not a vocabulary file ({error!r}); re-run `dvc repro encode`"
        raise PipelineError(message) from None
    characters = isinstance(chars, list) and all(isinstance(c, str) and len(c) == 1 for c in chars)
    if not chars or not characters:
        raise PipelineError(f"{path}: `chars` must be a non-empty list of single characters")
    return chars


def settings_from_params(params: dict[str, Any] | None) -> tuple[int, SamplingSettings]:
    """Request params (missing ones take the schema defaults) -> (length, sampling settings)."""
    values = {spec.name: spec.default for spec in PARAMS.params} | (params or {})
    length = int(values["length"])
    if not 1 <= length <= MAX_LENGTH:
        raise PipelineError(f"length must be between 1 and {MAX_LENGTH}, got {length}")
    settings = SamplingSettings(
        temperature=float(values["temperature"]),
        top_k=int(values["top_k"]),
        top_p=float(values["top_p"]),
        seed=int(values["seed"]),
    )
    return length, settings


def generate_texts(
    sampler: Sampler, prompts: list[str], length: int, settings: SamplingSettings
) -> list[str]:
    """One continuation per prompt, in order; prompts of each length form one batch."""
    if not 1 <= len(prompts) <= MAX_ROWS:
        raise PipelineError(f"send between 1 and {MAX_ROWS} prompts, got {len(prompts)}")
    texts = [""] * len(prompts)
    groups: dict[int, list[int]] = {}
    for row, prompt in enumerate(prompts):
        groups.setdefault(len(prompt), []).append(row)
    for rows in groups.values():
        batch = sampler.generate([prompts[row] for row in rows], length, settings)
        for row, text in zip(rows, batch, strict=True):
            texts[row] = text
    return texts


def warm_up(sampler: Sampler) -> None:
    """Trace the compiled functions for any batch and prompt length before the first request
    (with `reduce_retracing`, the second shape gives the shape-generic trace)."""
    char = sampler.vocabulary[0]
    sampler.generate([char], 1, SamplingSettings(temperature=0))
    sampler.generate([char * 2] * 2, 1, SamplingSettings(temperature=1.0))


class TextGenerator(PythonModel):
    """Loads the Keras model and vocabulary artifacts; continues each row's `prompt`."""

    def __init__(self) -> None:
        self.sampler: Sampler | None = None

    def load_context(self, context: PythonModelContext) -> None:
        vocabulary = read_vocabulary(Path(context.artifacts["vocab"]))
        self.sampler = make_sampler(load_model(Path(context.artifacts["model"])), vocabulary)
        warm_up(self.sampler)

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        if self.sampler is None:
            raise MlflowException("TextGenerator.predict called before load_context")
        if "prompt" not in model_input.columns:
            raise MlflowException.invalid_parameter_value("the input needs a `prompt` column")
        prompts = list(model_input["prompt"])
        if not all(isinstance(prompt, str) for prompt in prompts):
            raise MlflowException.invalid_parameter_value("every `prompt` must be a string")
        try:
            length, settings = settings_from_params(params)
            texts = generate_texts(self.sampler, prompts, length, settings)
        except PipelineError as error:
            # An MlflowException reaches the HTTP client as a 400 with this message.
            raise MlflowException.invalid_parameter_value(str(error)) from None
        return pd.DataFrame({"text": texts})


def serving_requirements() -> list[str]:
    """The installed versions of what the generator imports (the TensorFlow build as installed:
    `tensorflow` or `tensorflow-cpu`)."""
    names = ["mlflow", "keras", "numpy", "pandas", "pydantic", "pyyaml"]
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


def log_generator(model_path: Path, vocab_path: Path, registered_model_name: str) -> ModelInfo:
    """Log the generator into the active MLflow run as `generator` and register it.

    MLflow checks the logged model on its example request, so a model that cannot load or
    generate fails here, at training time, not when it is served."""
    for path in (model_path, vocab_path):
        if not path.is_file():
            raise PipelineError(f"{path} not found; run `dvc repro train` first")
    source = Path(__file__).parent
    with tempfile.TemporaryDirectory() as temporary:
        package = Path(temporary, "pipeline")
        package.mkdir()
        for module in CARRIED_MODULES:
            shutil.copy(source / module, package / module)
        model_code = Path(temporary, "generator_model.py")
        model_code.write_text(MODEL_CODE, encoding="utf-8")
        return mlflow.pyfunc.log_model(
            name=ARTIFACT_NAME,
            python_model=model_code,
            artifacts={"model": str(model_path), "vocab": str(vocab_path)},
            code_paths=[str(package)],
            signature=SIGNATURE,
            input_example=example_request(read_vocabulary(vocab_path)),
            pip_requirements=serving_requirements(),
            registered_model_name=registered_model_name,
        )
