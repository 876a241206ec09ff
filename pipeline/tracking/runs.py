"""MLflow plumbing shared by the train and evaluate stages.

Both stages of one `dvc repro` log into ONE MLflow run: train opens it and tags it with the
sha256 of the model file it wrote; evaluate finds the newest run with that tag and re-opens it.
(No run id is written into a DVC output: its hash would change `dvc.lock` on every run.) The
default store is the SQLite file `mlflow.db` at the repository root; set `MLFLOW_TRACKING_URI` to
use a tracking server instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities import RunStatus

from pipeline.core.config import Params
from pipeline.core.errors import PipelineError
from pipeline.core.hashing import hash_file, hash_folder
from pipeline.core.urls import redact_text, redact_url
from pipeline.tracking.store import store_creation_lock, store_errors, store_refusal, tracking_uri

log = logging.getLogger(__name__)

MODEL_TAG = "model_sha256"  # the run that wrote a model file: how evaluate finds it
# Outputs that git tracks (DVC keeps them out of its cache): pathspecs that `git_dirty` ignores.
GENERATED_PATHS = (
    ":(exclude)dvc.lock",
    ":(exclude)reports/*.json",
    ":(exclude)reports/*.csv",
    ":(exclude)reports/*.md",
)


def git_state() -> dict[str, str]:
    """The commit this run's code came from, and whether the work tree had uncommitted changes."""

    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
        return result.stdout.strip() if result.returncode == 0 else ""

    commit = git("rev-parse", "HEAD") or "unknown"
    # Code and params only: dvc.lock and the git-tracked reports are outputs this very run
    # rewrites, so a fresh clone's `dvc repro` must not count them as local changes.
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", *GENERATED_PATHS)
    return {"git_commit": commit, "git_dirty": str(bool(dirty)).lower()}


def default_run_name(environ: Mapping[str, str], commit: str, now: datetime) -> str:
    """The DVC experiment's name under `dvc exp run` (DVC passes it to every stage as
    `DVC_EXP_NAME`), else `<UTC month day>-<time>-<short commit>` (`1203-131640-5ed8a06`): short
    and distinct from its first characters, where the MLflow UI cuts a long name, and unlike
    MLflow's generated names, which repeat once training has seeded Python's `random`."""
    experiment = environ.get("DVC_EXP_NAME")
    if experiment:
        return experiment
    return f"{now.astimezone(UTC):%m%d-%H%M%S}-{commit[:7]}"


def dvc_tags(environ: Mapping[str, str]) -> dict[str, str]:
    """The DVC experiment name and the revision it is based on, when run by `dvc exp run`."""
    names = {"DVC_EXP_NAME": "dvc_experiment", "DVC_EXP_BASELINE_REV": "dvc_baseline_rev"}
    return {tag: environ[variable] for variable, tag in names.items() if environ.get(variable)}


def start_training_run(
    params: Params, run_name: str | None = None, tags: dict[str, str] | None = None
) -> mlflow.ActiveRun:
    """Open a new run in the configured experiment with params and provenance tags."""
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    git = git_state()
    run_name = run_name or default_run_name(os.environ, git["git_commit"], datetime.now(UTC))
    all_tags = {
        **git,
        **dvc_tags(os.environ),
        "data_hash": hash_folder(),
        "stage": "train",
        **({"sweep": params.mlflow.sweep} if params.mlflow.sweep else {}),
        **(tags or {}),
    }
    try:
        with store_errors(uri):
            with store_creation_lock(uri):
                mlflow.set_experiment(params.mlflow.experiment)
            run = mlflow.start_run(run_name=run_name, tags=all_tags)
            mlflow.log_params(flatten_params(params))
    except mlflow.exceptions.MlflowException as error:
        raise PipelineError(store_refusal(error, uri, params.mlflow.experiment)) from None
    return run


@contextlib.contextmanager
def training_run(params: Params, tags: dict[str, str] | None = None) -> Iterator[mlflow.ActiveRun]:
    """A run that always ends with a true status: FINISHED; KILLED when a signal or Ctrl-C
    stopped it (`KeyboardInterrupt`); FAILED on any other exception. Never left RUNNING."""
    run = start_training_run(params, tags=tags)
    try:
        yield run
    except KeyboardInterrupt:
        mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
        raise
    except BaseException:
        mlflow.end_run(RunStatus.to_string(RunStatus.FAILED))
        raise
    mlflow.end_run(RunStatus.to_string(RunStatus.FINISHED))


EPOCH_METRICS = ("loss", "val_loss")  # what people compare per epoch; nothing else is logged


def log_epoch(epoch: int, logs: Mapping[str, float]) -> None:
    """One epoch's `loss` and `val_loss`, with the epoch number (1, 2, ...) as step."""
    row = {key: float(logs[key]) for key in EPOCH_METRICS if key in logs}
    if row:
        mlflow.log_metrics(row, step=epoch)


def log_history(history: dict[str, list[float]]) -> None:
    """Per-epoch metrics of earlier epochs (a resumed run re-logs them to hold the whole curve)."""
    epochs = max((len(values) for values in history.values()), default=0)
    for epoch in range(epochs):
        log_epoch(epoch + 1, {k: v[epoch] for k, v in history.items() if epoch < len(v)})


def log_final_metrics(metrics: dict[str, float]) -> None:
    """Log final metrics to the active run AND to every model it logged, so that MLflow's
    Logged models tab shows each model's final quality (MLflow 3 keeps model metrics apart)."""
    run = mlflow.active_run()
    if run is None:
        raise PipelineError("log_final_metrics needs an active MLflow run")
    models = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}'",
        output_format="list",
    )
    if not models:
        mlflow.log_metrics(metrics)
    for model in models:  # a metric logged with a model_id lands on the run as well
        mlflow.log_metrics(metrics, model_id=model.model_id)


def record_run(model_path: Path) -> None:
    """Tag the active run with the sha256 of the model file it wrote, for evaluate to find."""
    mlflow.set_tag(MODEL_TAG, hash_file(model_path))


def resume_recorded_run(model_path: Path, experiment: str) -> mlflow.ActiveRun:
    """Re-open the newest run of `experiment` that wrote `model_path` (see `record_run`)."""
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    digest = hash_file(model_path)
    rerun = "re-run `dvc repro -f train`"
    try:
        with store_errors(uri):
            client = MlflowClient()
            found = client.get_experiment_by_name(experiment)
            runs = client.search_runs(
                [found.experiment_id] if found else [],
                filter_string=f"tags.{MODEL_TAG} = '{digest}'",
                order_by=["attributes.start_time DESC"],
                max_results=1,
            )
            if not runs:
                raise PipelineError(
                    f"no run of MLflow experiment '{experiment}' in {redact_url(uri)} trained "
                    f"{model_path} (sha256 {digest[:12]}...); {rerun}"
                )
            return mlflow.start_run(run_id=runs[0].info.run_id)
    except mlflow.exceptions.MlflowException as error:
        reason = redact_text((error.message or type(error).__name__).splitlines()[0])
        raise PipelineError(
            f"cannot re-open the training run in {redact_url(uri)} ({reason}); {rerun}"
        ) from None


def flatten_params(params: Params) -> dict[str, str]:
    """`{"train.units": "256", ...}` for logging as MLflow parameters."""
    flat: dict[str, str] = {}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            for index, item in enumerate(value):
                walk(f"{prefix}.{index}", item)
        else:
            flat[prefix] = str(value)

    walk("", params.model_dump(by_alias=True))
    return flat
