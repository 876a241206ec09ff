"""Where runs are recorded: the tracking URI (a SQLite file at the repository root by default), the
lock around a new SQLite store's first use, and store errors turned into one line."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from pathlib import Path

import filelock
import mlflow
import sqlalchemy.exc
from filelock import FileLock

from pipeline.core.errors import PipelineError
from pipeline.core.urls import redact_text, redact_url

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


def open_experiment(experiment: str, uri: str) -> tuple[mlflow.MlflowClient, str]:
    """A client of the store at `uri` and `experiment`'s id; a `PipelineError` saying what to do
    if the local store does not exist (opening it would create an empty one) or lacks it."""
    local_file = (
        uri.removeprefix("sqlite:///").split("?")[0] if uri.startswith("sqlite:///") else None
    )
    if local_file is not None and not Path(local_file).is_file():
        raise PipelineError(
            f"no MLflow store at {local_file}: run `dvc repro` first, or set MLFLOW_TRACKING_URI"
        )
    client = mlflow.MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        known = ", ".join(sorted(e.name for e in client.search_experiments())) or "none"
        raise PipelineError(
            f"no MLflow experiment '{experiment}' in {uri} (experiments there: {known}); "
            "pass --experiment NAME or set MLFLOW_TRACKING_URI"
        )
    return client, found.experiment_id


MAX_REASON_CHARS = 200  # of MLflow's own reason, which can quote a whole connection error


@contextlib.contextmanager
def store_reads(uri: str) -> Iterator[None]:
    """Reading a store: `store_errors`, and also an unreachable server, a URI MLflow cannot use
    or a database driver that is not installed, each as one line naming the redacted URI."""
    where = redact_url(uri)
    fix = "start it, fix MLFLOW_TRACKING_URI (http://host:port or sqlite:///file.db), or unset it"
    try:
        with store_errors(uri):
            yield
    except mlflow.exceptions.MlflowException as error:
        reason = redact_text((error.message or type(error).__name__).strip().splitlines()[0])
        if len(reason) > MAX_REASON_CHARS:
            reason = reason[: MAX_REASON_CHARS - 3] + "..."
        raise PipelineError(
            f"MLflow tracking store {where} cannot be read ({reason}); {fix}"
        ) from None
    except ImportError as error:  # e.g. postgresql:// without the driver SQLAlchemy picks
        raise PipelineError(
            f"MLflow tracking store {where} needs the Python module '{error.name}', which is not "
            f"installed; {fix}"
        ) from None
