"""What a generation request may ask: its params schema and defaults, and the bounds on rows, prompt
length, length and work, checked before any work; and the work a server process takes on at once
(`WorkInFlight`), so that a saturated server refuses at once instead of queueing for minutes."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

from pipeline.core.errors import PipelineError
from pipeline.generation.decoding import SamplingSettings

MAX_LENGTH = 100_000


MAX_ROWS = 1024


MAX_PROMPT_CHARS = 2_000


# rows x (longest prompt + length): one character step of one row each. The default model steps
# ~10,000 characters a second for one row and ~100,000 in a batch of 64 on two CPU cores, so the
# biggest accepted request takes seconds to tens of seconds there; the deadline bounds the rest.
MAX_WORK = 1_000_000


# Work in flight in one server process: room for two of the biggest requests side by side (about
# what two CPU cores keep busy) and for normal requests beside them. Requests past it are refused
# at once with HTTP 503 (the proxy adds Retry-After); queueing them kept a normal request waiting
# 14 to 48 s behind six big ones, all sharing the cores.
MAX_WORK_IN_FLIGHT = 2 * MAX_WORK + 100_000


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


class ServerBusy(PipelineError):
    """The server has as much work in flight as it takes on: retry later."""


class WorkInFlight:
    """The character steps that admitted requests of one process still have to do, bounded."""

    def __init__(self, limit: int = MAX_WORK_IN_FLIGHT) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()  # MLflow's scoring server predicts in a thread pool

    @contextlib.contextmanager
    def admit(self, work: int) -> Iterator[None]:
        """Hold `work` for the block, or raise `ServerBusy` at once when it does not fit."""
        with self._lock:
            if self.used + work > self.limit:
                raise ServerBusy(
                    f"the server is busy: {self.used} characters of work in flight, this request "
                    f"asks for {work} more, at most {self.limit} at once: retry in a few seconds"
                )
            self.used += work
        try:
            yield
        finally:
            with self._lock:
                self.used -= work


def request_work(prompts: list[str], length: int) -> int:
    """rows x (longest prompt + length): the character steps a request costs."""
    return len(prompts) * (max(map(len, prompts), default=0) + length)


def check_work(prompts: list[str], length: int) -> None:
    """Refuse, before any work, a request bigger than the bounds in the module docstring."""
    if not 1 <= len(prompts) <= MAX_ROWS:
        raise PipelineError(f"send between 1 and {MAX_ROWS} prompts, got {len(prompts)}")
    longest = max(len(prompt) for prompt in prompts)
    if longest > MAX_PROMPT_CHARS:
        raise PipelineError(
            f"a prompt has {longest} characters; at most {MAX_PROMPT_CHARS} are accepted"
        )
    work = request_work(prompts, length)
    if work > MAX_WORK:
        raise PipelineError(
            f"the request asks for {len(prompts)} rows x ({longest} prompt + {length} generated) "
            f"= {work} characters of work; at most {MAX_WORK} per request: send fewer rows, "
            "shorter prompts or a smaller length"
        )


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
