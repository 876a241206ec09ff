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
so no request keeps a worker busy after MLflow has given up on it. Each process takes on at most
`MAX_WORK_IN_FLIGHT` character steps at once; a request past that is refused at once with HTTP
503, so a saturated server answers or refuses a normal request in well under a second.

`make serve MODEL=...` (scripts/serve.sh) serves it behind nginx, which also refuses oversized,
malformed or deeply nested bodies, a missing Content-Type and unknown params before MLflow parses
anything, and adds Retry-After to each 503.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import DEADLINE_EXCEEDED, TEMPORARILY_UNAVAILABLE
from mlflow.pyfunc import PythonModel, PythonModelContext

from pipeline.core.errors import PipelineError
from pipeline.corpus.vocabulary import read_vocabulary
from pipeline.generation.decoding import SamplingSettings
from pipeline.generation.requests import (
    ServerBusy,
    WorkInFlight,
    budget_from_params,
    check_work,
    prompts_from_input,
    request_work,
    server_budget_s,
    settings_from_params,
)
from pipeline.generation.sampler import Sampler, make_sampler
from pipeline.lstm.model import load_model

CHUNK = 256  # characters per compiled call between two deadline checks


class DeadlineExceeded(PipelineError):
    """Generation ran past the request's time budget and was stopped."""


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
        self.in_flight = WorkInFlight()

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
            check_work(prompts, length)  # a request over the bounds is a 400, never a 503
            with self.in_flight.admit(request_work(prompts, length)):
                texts = generate_texts(self.sampler, prompts, length, settings, budget)
        except ServerBusy as error:
            # TEMPORARILY_UNAVAILABLE reaches the HTTP client as a 503 with this message.
            raise MlflowException(str(error), error_code=TEMPORARILY_UNAVAILABLE) from None
        except DeadlineExceeded as error:
            # DEADLINE_EXCEEDED reaches the HTTP client as a 504 with this message.
            raise MlflowException(str(error), error_code=DEADLINE_EXCEEDED) from None
        except PipelineError as error:
            # INVALID_PARAMETER_VALUE reaches the HTTP client as a 400 with this message.
            raise MlflowException.invalid_parameter_value(str(error)) from None
        return pd.DataFrame({"text": texts})
