"""MLflow plumbing shared by the train and evaluate stages.

Both stages of one `dvc repro` log into ONE MLflow run: train opens it and records its id in
`models/run.json`; evaluate re-opens that run. The default store is the SQLite file `mlflow.db`
at the repository root; set `MLFLOW_TRACKING_URI` to use a tracking server instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import mlflow
from filelock import FileLock
from mlflow.entities import RunStatus

from pipeline import files
from pipeline.config import ENCODED_DIR, MODELS_DIR, Params, flatten_params
from pipeline.errors import PipelineError
from pipeline.urls import redact_url

RUN_FILE = MODELS_DIR / "run.json"


# Fail fast when a tracking server is down instead of MLflow's default minutes of retries.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


def project_root(folder: Path | None = None) -> Path:
    """The repository the run belongs to, also from inside a `dvc exp run --queue/--temp` copy.

    Queued experiments run in a throwaway copy under `<repo>/.dvc/tmp/exps/`; their MLflow runs
    must land in the real repository's store, not in the copy that DVC deletes afterwards.
    """
    parts = (folder or Path.cwd()).resolve().parts
    for index in range(len(parts) - 2):
        if parts[index : index + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:index])
    return Path(*parts)


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` if set, else the SQLite store `mlflow.db` at the repository root.

    The SQLite connection waits up to 60 s for a lock, so parallel queued experiments
    (`dvc queue start -j 2`) take turns instead of failing with "database is locked".
    """
    return os.environ.get("MLFLOW_TRACKING_URI") or (
        f"sqlite:///{project_root() / 'mlflow.db'}?timeout=60"
    )


def git_state() -> dict[str, str]:
    """The commit this run's code came from, and whether the work tree had uncommitted changes."""

    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
        return result.stdout.strip() if result.returncode == 0 else ""

    commit = git("rev-parse", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "git_dirty": str(bool(dirty)).lower()}


def hash_folder(folder: Path = ENCODED_DIR) -> str:
    """sha256 over the names and bytes of every file in `folder`, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def store_creation_lock(uri: str) -> contextlib.AbstractContextManager[object]:
    """For a SQLite store, a file lock around its first use: two experiments started at once
    would otherwise both run MLflow's schema migrations ("duplicate column name")."""
    if not uri.startswith("sqlite:///"):
        return contextlib.nullcontext()
    database = Path(uri.removeprefix("sqlite:///").split("?")[0])
    return FileLock(database.with_name(database.name + ".lock"), timeout=120)


def start_training_run(
    params: Params, run_name: str | None = None, tags: dict[str, str] | None = None
) -> mlflow.ActiveRun:
    """Open a new run in the configured experiment with params and provenance tags."""
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    all_tags = {**git_state(), "data_hash": hash_folder(), "stage": "train", **(tags or {})}
    try:
        with store_creation_lock(uri):
            mlflow.set_experiment(params.mlflow.experiment)
        run = mlflow.start_run(run_name=run_name, tags=all_tags)
        mlflow.log_params(flatten_params(params))
    except mlflow.exceptions.MlflowException as error:
        message = error.message.splitlines()[0] if error.message else type(error).__name__
        raise PipelineError(
            f"MLflow tracking store {redact_url(uri)} is unreachable or refused the run "
            f"({message}); start it, or unset MLFLOW_TRACKING_URI to use mlflow.db"
        ) from None
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


def log_history(history: dict[str, list[float]]) -> None:
    """Per-epoch metrics with the epoch index as step (how MlflowCallback logs them)."""
    epochs = max((len(values) for values in history.values()), default=0)
    for epoch in range(epochs):
        row = {key: values[epoch] for key, values in history.items() if epoch < len(values)}
        mlflow.log_metrics(row, step=epoch)


def record_run(run: mlflow.ActiveRun) -> None:
    files.write_json(
        RUN_FILE,
        {
            "run_id": run.info.run_id,
            "experiment_id": run.info.experiment_id,
            "tracking_uri": tracking_uri(),
        },
    )


def resume_recorded_run() -> mlflow.ActiveRun:
    """Re-open the run that the train stage recorded in `models/run.json`."""
    recorded = files.read_json(RUN_FILE)
    mlflow.set_tracking_uri(tracking_uri())
    try:
        return mlflow.start_run(run_id=recorded["run_id"])
    except mlflow.exceptions.MlflowException as error:
        raise PipelineError(
            f"{RUN_FILE}: cannot re-open MLflow run {recorded['run_id']} in {tracking_uri()}: "
            f"{error.message}; re-run `dvc repro -f train`"
        ) from None
