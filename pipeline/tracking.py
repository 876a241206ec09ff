"""MLflow plumbing shared by the train and evaluate stages.

Both stages of one `dvc repro` log into ONE MLflow run: train opens it and tags it with the
sha256 of the model file it wrote; evaluate finds the newest run with that tag and re-opens it.
(No run id is written into a DVC output: its hash would change `dvc.lock` on every run.) The
default store is the SQLite file `mlflow.db` at the repository root; set `MLFLOW_TRACKING_URI` to
use a tracking server instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import filelock
import mlflow
import sqlalchemy.exc
from filelock import FileLock
from mlflow import MlflowClient
from mlflow.entities import RunStatus

from pipeline.config import Params, flatten_params
from pipeline.errors import PipelineError
from pipeline.paths import ENCODED_DIR
from pipeline.urls import redact_text, redact_url

log = logging.getLogger(__name__)

PROMOTION_ATTEMPTS = 5  # set-and-read-back rounds against a concurrent promotion
PROMOTION_SETTLE_S = 1.0
MODEL_TAG = "model_sha256"  # the run that wrote a model file: how evaluate finds it
# Outputs that git tracks (DVC keeps them out of its cache): pathspecs that `git_dirty` ignores.
GENERATED_PATHS = (
    ":(exclude)dvc.lock",
    ":(exclude)reports/*.json",
    ":(exclude)reports/*.csv",
    ":(exclude)reports/*.md",
)
CHAMPION = "champion"  # the registry alias that the README serves and loads
# What promotion compares (lower is better): train's best validation loss in bits per character.
SELECTION_METRIC = "validation.bits_per_char"


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
    # Code and params only: dvc.lock and the git-tracked reports are outputs this very run
    # rewrites, so a fresh clone's `dvc repro` must not count them as local changes.
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", *GENERATED_PATHS)
    return {"git_commit": commit, "git_dirty": str(bool(dirty)).lower()}


def default_run_name(environ: Mapping[str, str], commit: str, now: datetime) -> str:
    """The DVC experiment's name under `dvc exp run` (DVC passes it to every stage as
    `DVC_EXP_NAME`), else `repro-<short commit>-<UTC time>`: unique and meaningful, where
    MLflow's generated names repeat once training has seeded Python's `random`."""
    experiment = environ.get("DVC_EXP_NAME")
    if experiment:
        return experiment
    return f"repro-{commit[:7]}-{now.astimezone(UTC):%Y%m%d-%H%M%S}"


def dvc_tags(environ: Mapping[str, str]) -> dict[str, str]:
    """The DVC experiment name and the revision it is based on, when run by `dvc exp run`."""
    names = {"DVC_EXP_NAME": "dvc_experiment", "DVC_EXP_BASELINE_REV": "dvc_baseline_rev"}
    return {tag: environ[variable] for variable, tag in names.items() if environ.get(variable)}


def hash_folder(folder: Path = ENCODED_DIR) -> str:
    """sha256 over the names and bytes of every file in `folder`, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        update_from_file(digest, path)
    return digest.hexdigest()


def hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    update_from_file(digest, path)
    return digest.hexdigest()


def update_from_file(digest: hashlib._Hash, path: Path) -> None:
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)


def store_creation_lock(uri: str) -> contextlib.AbstractContextManager[object]:
    """For a SQLite store, a file lock around its first use: two experiments started at once
    would otherwise both run MLflow's schema migrations ("duplicate column name"). It waits
    twice the URI's SQLite `timeout` (120 s for the default store)."""
    if not uri.startswith("sqlite:///"):
        return contextlib.nullcontext()
    database, _, query = uri.removeprefix("sqlite:///").partition("?")
    waits = [
        value for key, _, value in (p.partition("=") for p in query.split("&")) if key == "timeout"
    ]
    try:
        timeout = 2 * float(waits[-1]) if waits else 120.0
    except ValueError:
        timeout = 120.0
    lock = Path(database).with_name(Path(database).name + ".lock")
    return FileLock(lock, timeout=timeout if math.isfinite(timeout) else 120.0)


@contextlib.contextmanager
def store_errors(uri: str) -> Iterator[None]:
    """Turn the store's own failures, which MLflow lets through as SQLAlchemy or lock errors,
    into one line a user can act on: a damaged SQLite file, or a store another process holds."""
    where = redact_url(uri)
    try:
        yield
    except filelock.Timeout as error:
        raise PipelineError(
            f"MLflow tracking store {where}: its lock {error.lock_file} is still held by another "
            "process (a parallel `dvc exp run`?); wait for it to finish, then retry"
        ) from None
    except sqlalchemy.exc.OperationalError as error:  # e.g. "database is locked"
        reason = redact_text(str(error.orig or error).splitlines()[0])
        raise PipelineError(
            f"MLflow tracking store {where} could not be used ({reason}); if another process "
            "holds it, wait for it to finish and retry"
        ) from None
    except sqlalchemy.exc.DatabaseError as error:  # e.g. "file is not a database"
        reason = redact_text(str(error.orig or error).splitlines()[0])
        raise PipelineError(
            f"MLflow tracking store {where} is damaged ({reason}); move the file aside to start "
            "a new store, or set MLFLOW_TRACKING_URI to another one"
        ) from None


def store_refusal(error: mlflow.exceptions.MlflowException, uri: str, experiment: str) -> str:
    """One line saying why the store refused the run, naming the user but never the password.

    A tracking server with authentication answers 401 for an unknown user or a wrong password
    (MLflow sends `MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD`) and 403 for a user
    without write permission on the experiment; MLflow does not retry either.
    """
    where = redact_url(uri)
    user = os.environ.get("MLFLOW_TRACKING_USERNAME", "")
    status = error.get_http_status_code()
    if status == 401:
        who = f"user '{user}'" if user else "requests without credentials"
        return (
            f"MLflow tracking server {where} refused the login of {who} (HTTP 401); set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to an account on that server"
        )
    if status == 403:
        return (
            f"MLflow tracking server {where}: user '{user}' lacks permission to log runs in "
            f"experiment '{experiment}' (HTTP 403); ask its owner or an admin to grant EDIT on it"
        )
    message = error.message.splitlines()[0] if error.message else type(error).__name__
    return (
        f"MLflow tracking store {where} is unreachable or refused the run "
        f"({redact_text(message)}); start it, or unset MLFLOW_TRACKING_URI to use mlflow.db"
    )


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


def beats_champion(candidate: float, champion: float | None) -> bool:
    """A new version becomes champion when there is none yet, or when it is strictly better
    (lower). A champion whose run lacks the metric (older runs) is treated as beaten."""
    if not math.isfinite(candidate):
        return False
    return champion is None or math.isnan(champion) or candidate < champion


def champion_value(client: MlflowClient, model_name: str) -> tuple[str | None, float | None]:
    """(version, SELECTION_METRIC of its run) of the model's current champion; (None, None)
    when no version has the alias yet."""
    try:
        version = client.get_model_version_by_alias(model_name, CHAMPION)
    except mlflow.exceptions.MlflowException as error:
        if error.error_code in {"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"}:
            return None, None
        raise
    metrics = client.get_run(version.run_id).data.metrics if version.run_id else {}
    return str(version.version), metrics.get(SELECTION_METRIC, math.nan)


def promote_if_better(versions: dict[str, str], value: float) -> dict[str, str]:
    """Give the new `versions` ({registered model: version}, all from this run) the alias
    `champion` when `value` beats the current champion of the first model; record the decision
    as tags on the active run and return them.

    A SQLite store is serialised by its lock. A tracking server has no lock to take, so two
    experiments finishing at once may both see the old champion and both set the alias; each
    therefore reads the alias back after setting it and takes it again while it still holds the
    better value, so the best of them ends up champion whatever the interleaving."""
    client = MlflowClient()
    first = next(iter(versions))
    with store_errors(tracking_uri()), store_creation_lock(tracking_uri()):
        previous_version, previous = champion_value(client, first)
        promoted = beats_champion(value, previous)
        current_version, current = previous_version, previous
        for _ in range(PROMOTION_ATTEMPTS if promoted else 0):
            if current_version == versions[first] or not beats_champion(value, current):
                break  # ours already, or a better model took it meanwhile
            for name, version in versions.items():
                client.set_registered_model_alias(name, CHAMPION, version)
            time.sleep(PROMOTION_SETTLE_S)  # let a concurrent writer's alias land first
            current_version, current = champion_value(client, first)
    tags = {
        "champion_decision": "promoted" if promoted else "kept previous champion",
        "champion_previous_version": previous_version or "none",
        "champion_previous_value": "none" if previous is None else f"{previous:.6f}",
        "champion_metric": SELECTION_METRIC,
    }
    mlflow.set_tags(tags)
    log.info(
        "%s %.4f vs champion %s: %s",
        SELECTION_METRIC,
        value,
        tags["champion_previous_value"],
        tags["champion_decision"],
    )
    return tags


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
