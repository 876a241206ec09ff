"""MLflow plumbing shared by the train and evaluate stages.

Both stages of one `dvc repro` log into ONE MLflow run: train opens it and records its id in
`models/run.json`; evaluate re-opens that run. The default store is the SQLite file `mlflow.db`
at the repository root; set `MLFLOW_TRACKING_URI` to use a tracking server instead.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import mlflow

from pipeline import files
from pipeline.config import ENCODED_DIR, MODELS_DIR, Params, flatten_params
from pipeline.errors import PipelineError

RUN_FILE = MODELS_DIR / "run.json"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlflow.db').resolve()}"


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


def start_training_run(params: Params, run_name: str | None = None) -> mlflow.ActiveRun:
    """Open a new run in the configured experiment with params and provenance tags."""
    mlflow.set_tracking_uri(tracking_uri())
    mlflow.set_experiment(params.mlflow.experiment)
    tags = {**git_state(), "data_hash": hash_folder(), "stage": "train"}
    run = mlflow.start_run(run_name=run_name, tags=tags)
    mlflow.log_params(flatten_params(params))
    return run


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
