"""The trained model as an MLflow pyfunc text generator, servable without this repository.

`log_generator(model_path, vocab_path, registered_model_name)` logs a `TextGenerator` into the
active MLflow run as `generator` and registers it. The logged model carries the Keras model and
the vocabulary as artifacts, and as code only the pipeline modules that generation imports, so it
serves from anywhere MLflow, TensorFlow and Keras are installed:

    mlflow models serve -m "models:/charlstm-macbeth-generator/1" --env-manager local -p 5001
    curl -s 127.0.0.1:5001/invocations -H 'Content-Type: application/json' -d \
      '{"dataframe_records": [{"prompt": "fair is foul"}], "params": {"length": 200, "seed": 1}}'

Input: a DataFrame with a string column `prompt` (in Python also a dict `{"prompt": [...]}`).
Settings are request `params` shared by every row (`length`, `temperature`, `top_k`, `top_p`,
`seed`, `timeout_s`; defaults in `PARAMS`). Output: a DataFrame with a string column `text`, each
prompt's continuation. All rows are generated as one batch (shorter prompts padded), so a row's
text depends on the seed, its prompt and its position among the rows, as `--num-samples` does in
the CLI: send a prompt N times for N different samples.

Work per request is bounded: a prompt has at most `MAX_PROMPT_CHARS` characters, and rows x
(longest prompt + length) is at most `MAX_WORK` character steps; a bigger request is refused with
HTTP 400 before any work. Generation runs in chunks and stops at a deadline (`timeout_s`, at most
`MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT` minus a margin), answering HTTP 504 with what was asked,
so no request keeps a worker busy after MLflow has given up on it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.protos.databricks_pb2 import DEADLINE_EXCEEDED
from mlflow.pyfunc import PythonModel, PythonModelContext
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

from pipeline.errors import PipelineError
from pipeline.model import load_model
from pipeline.sampling import Sampler, SamplingSettings, make_sampler
from pipeline.vocabulary import read_vocabulary

ARTIFACT_NAME = "generator"
MAX_LENGTH = 100_000
MAX_ROWS = 1024
MAX_PROMPT_CHARS = 2_000
# rows x (longest prompt + length): one character step of one row each. The default model steps
# ~10,000 characters a second for one row and ~100,000 in a batch of 64 on two CPU cores, so the
# biggest accepted request takes seconds to tens of seconds there; the deadline bounds the rest.
MAX_WORK = 1_000_000
CHUNK = 256  # characters per compiled call between two deadline checks
# MLflow's scoring server answers 504 after MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT (60 s by
# default) but leaves the handler running; stopping a margin earlier frees the worker first.
DEADLINE_MARGIN_S = 10.0

PARAMS = ParamSchema(
    [
        ParamSpec("length", "integer", 200),  # characters generated per prompt
        ParamSpec("temperature", "double", 0.8),  # 0 = greedy
        ParamSpec("top_k", "integer", 0),  # 0 = off
        ParamSpec("top_p", "double", 1.0),  # 1 = off
        ParamSpec("seed", "long", 0),
        ParamSpec("timeout_s", "double", 0.0),  # 0 = the server's budget; less stops sooner
    ]
)
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", "prompt")]),
    outputs=Schema([ColSpec("string", "text")]),
    params=PARAMS,
)

# The modules the generator imports (serving -> sampling -> model -> errors, and serving ->
# vocabulary -> paths); the logged model carries only these, as the package `pipeline`, so nothing
# else of the repository ships (not config.py: the builders take a `ModelShape`).
CARRIED_MODULES = (
    "__init__.py",
    "errors.py",
    "model.py",
    "paths.py",
    "sampling.py",
    "serving.py",
    "vocabulary.py",
)

# "Models from code" (https://mlflow.org/docs/latest/ml/model/models-from-code/): MLflow runs this
# file to get the model object, instead of unpickling one.
MODEL_CODE = """\
import mlflow

from pipeline.serving import TextGenerator

mlflow.models.set_model(TextGenerator())
"""


class DeadlineExceeded(PipelineError):
    """Generation ran past the request's time budget and was stopped."""


def settings_from_params(params: dict[str, Any] | None) -> tuple[int, SamplingSettings]:
    """Request params (missing ones take the schema defaults) -> (length, sampling settings)."""
    given = {name: value for name, value in (params or {}).items() if value is not None}
    values = {spec.name: spec.default for spec in PARAMS.params} | given

    def number(name: str, kind: type[int] | type[float]) -> Any:
        try:
            return kind(values[name])
        except (TypeError, ValueError, OverflowError):  # e.g. int(NaN), int(inf), a list
            raise PipelineError(f"{name} must be a {kind.__name__}, got {values[name]!r}") from None

    length = number("length", int)
    if not 1 <= length <= MAX_LENGTH:
        raise PipelineError(f"length must be between 1 and {MAX_LENGTH}, got {length}")
    settings = SamplingSettings(
        temperature=number("temperature", float),
        top_k=number("top_k", int),
        top_p=number("top_p", float),
        seed=number("seed", int),
    )
    return length, settings


def server_budget_s() -> float:
    """Seconds a request may generate for: MLflow's request timeout minus a margin."""
    try:
        timeout = float(os.environ.get("MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT") or 60)
    except ValueError:
        timeout = 60.0
    return max(timeout - DEADLINE_MARGIN_S, 1.0)


def budget_from_params(params: dict[str, Any] | None, server_budget: float) -> float:
    """The request's `timeout_s` (0 or missing = the server's budget), never above the server's."""
    value = (params or {}).get("timeout_s") or 0.0
    try:
        requested = float(value)
    except (TypeError, ValueError):
        raise PipelineError(f"timeout_s must be a number of seconds, got {value!r}") from None
    if not 0 <= requested < float("inf"):  # also refuses NaN
        raise PipelineError(f"timeout_s must be a finite number of seconds >= 0, got {requested}")
    return min(requested, server_budget) if requested > 0 else server_budget


def check_work(prompts: list[str], length: int) -> None:
    """Refuse, before any work, a request bigger than the bounds in the module docstring."""
    if not 1 <= len(prompts) <= MAX_ROWS:
        raise PipelineError(f"send between 1 and {MAX_ROWS} prompts, got {len(prompts)}")
    longest = max(len(prompt) for prompt in prompts)
    if longest > MAX_PROMPT_CHARS:
        raise PipelineError(
            f"a prompt has {longest} characters; at most {MAX_PROMPT_CHARS} are accepted"
        )
    work = len(prompts) * (longest + length)
    if work > MAX_WORK:
        raise PipelineError(
            f"the request asks for {len(prompts)} rows x ({longest} prompt + {length} generated) "
            f"= {work} characters of work; at most {MAX_WORK} per request: send fewer rows, "
            "shorter prompts or a smaller length"
        )


def generate_texts(
    sampler: Sampler,
    prompts: list[str],
    length: int,
    settings: SamplingSettings,
    budget_s: float = float("inf"),
) -> list[str]:
    """One continuation per prompt, in order, all rows in one batch; stops with
    `DeadlineExceeded` once `budget_s` seconds have passed."""
    check_work(prompts, length)
    started = time.monotonic()
    pieces: list[list[str]] = [[] for _ in prompts]
    done = 0
    for chunk in sampler.stream(prompts, length, settings, CHUNK):
        for row, piece in enumerate(chunk):
            pieces[row].append(piece)
        done += len(chunk[0])
        elapsed = time.monotonic() - started
        if done < length and elapsed > budget_s:
            raise DeadlineExceeded(
                f"generation stopped after {elapsed:.1f} s, over the {budget_s:g} s budget, with "
                f"{done} of {length} characters per row done: ask for fewer rows or characters"
            )
    return ["".join(row) for row in pieces]


def prompts_from_input(model_input: Any) -> list[str]:
    """The prompts of a DataFrame with a `prompt` column, or of a dict `{"prompt": [...]}`
    (MLflow turns such a dict into a one-row DataFrame holding the list)."""
    if isinstance(model_input, dict):
        model_input = pd.DataFrame({key: [value] for key, value in model_input.items()})
    if not isinstance(model_input, pd.DataFrame) or "prompt" not in model_input.columns:
        raise PipelineError("the input needs a `prompt` column")
    column = list(model_input["prompt"])
    if len(column) == 1 and isinstance(column[0], list | tuple | np.ndarray):
        column = list(column[0])
    if not all(isinstance(prompt, str) for prompt in column):
        raise PipelineError("every `prompt` must be a string")
    return column


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
        try:
            prompts = prompts_from_input(model_input)
            length, settings = settings_from_params(params)
            budget = budget_from_params(params, server_budget_s())
            texts = generate_texts(self.sampler, prompts, length, settings, budget)
        except DeadlineExceeded as error:
            # DEADLINE_EXCEEDED reaches the HTTP client as a 504 with this message.
            raise MlflowException(str(error), error_code=DEADLINE_EXCEEDED) from None
        except PipelineError as error:
            # INVALID_PARAMETER_VALUE reaches the HTTP client as a 400 with this message.
            raise MlflowException.invalid_parameter_value(str(error)) from None
        return pd.DataFrame({"text": texts})


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
