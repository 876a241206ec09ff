"""Faults while the pipeline runs: a kill mid-write, a full disk, two `dvc repro` at once and an
unreachable MLflow store. After each, nothing is lost and nothing half-written is trusted.

The kill and lock tests use a real `dvc repro` in a temporary git repository; the disk-full tests
run each data stage under a small `RLIMIT_FSIZE`, so a write fails with EFBIG like on a full disk.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from filelock import FileLock

from tests.support.corpora import CORPUS
from tests.support.project import (
    Project,
    clean_environment,
    copy_project,
    init_repo,
    run_module,
    tiny_params,
)
from tests.support.refusals import OUTPUTS, STAGES, check_refusal, error_line
from tests.support.servers import Handler, free_port, reply, serve

pytestmark = pytest.mark.slow
DVC_TIMEOUT_S = 300


def run_in(
    repo: Path, command: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=repo,
        env=env or clean_environment(),
        capture_output=True,
        text=True,
        timeout=DVC_TIMEOUT_S,
        check=False,
    )


def run_dvc(repo: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return run_in(repo, ["dvc", *arguments])


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git + DVC repository where `dvc repro encode` has run: download to encode are cached."""
    repo = init_repo(copy_project(tmp_path_factory.mktemp("dvc_repo")), clean_environment())
    result = run_dvc(repo, "repro", "encode")
    assert result.returncode == 0, f"dvc repro encode:\n{result.stdout}\n{result.stderr}"
    return repo


def assert_up_to_date(repo: Path) -> None:
    status = run_dvc(repo, "status", "encode")  # download to encode; train has never run
    assert status.returncode == 0, status.stderr
    assert "Data and pipelines are up to date." in status.stdout, status.stdout


# --- (1) killed mid-write ------------------------------------------------------------------------

# Each writer writes part of a new output through the project's atomic writers, says so, then
# blocks until it is killed: the moment a crash or SIGKILL would leave a half-written file.
HALF_WRITTEN_FILE = """
import time
from pathlib import Path
from pipeline.core import files
with files.atomic_open(Path("data/raw/corpus.txt"), "wb") as stream:
    stream.write(b"the first half of a new corp")
    stream.flush()
    print("writing", flush=True)
    time.sleep(120)
"""
HALF_WRITTEN_FOLDER = """
import time
from pathlib import Path
import numpy as np
from pipeline.core import files
with files.atomic_directory(Path("data/encoded")) as folder:
    files.save_array(folder / "train_ids.npy", np.zeros(10, dtype=np.uint8))
    print("writing", flush=True)
    time.sleep(120)
"""


@pytest.mark.parametrize(
    ("writer", "destination", "leftover"),
    [
        (HALF_WRITTEN_FILE, "data/raw/corpus.txt", "data/raw/.corpus.txt.*.tmp"),
        (HALF_WRITTEN_FOLDER, "data/encoded", "data/.encoded.*.tmp"),
    ],
    ids=["atomic_open", "atomic_directory"],
)
def test_a_write_killed_midway_leaves_the_old_output_that_dvc_trusts(
    dvc_repo: Path, writer: str, destination: str, leftover: str
) -> None:
    def contents() -> dict[str, bytes]:
        target = dvc_repo / destination
        paths = sorted(target.rglob("*")) if target.is_dir() else [target]
        return {str(path): path.read_bytes() for path in paths if path.is_file()}

    before = contents()
    process = subprocess.Popen(
        [sys.executable, "-c", writer],
        cwd=dvc_repo,
        env=clean_environment(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "writing\n"
    finally:
        process.kill()
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert contents() == before  # the previous output, byte for byte
    leftovers = sorted(dvc_repo.glob(leftover))
    assert len(leftovers) == 1, leftovers  # the half-written temporary, outside every DVC output
    assert_up_to_date(dvc_repo)  # DVC neither tracks the leftover nor sees a changed output
    for path in leftovers:
        shutil.rmtree(path) if path.is_dir() else path.unlink()


# A writer killed between the two renames of `atomic_directory`: the old folder is already under
# its temporary `.old` name, the new one not yet in place, so `data/encoded` does not exist.
KILLED_BETWEEN_RENAMES = """
import os
import time
from pathlib import Path
import numpy as np
from pipeline.core import files
rename = os.replace
def replace_then_stop(source, destination):
    rename(source, destination)
    if str(destination).endswith(".old"):
        print("between", flush=True)
        time.sleep(120)
os.replace = replace_then_stop
with files.atomic_directory(Path("data/encoded")) as folder:
    files.save_array(folder / "train_ids.npy", np.zeros(10, dtype=np.uint8))
"""
FAILED_FOLDER_WRITE = """
from pathlib import Path
from pipeline.core import files
with files.atomic_directory(Path("data/encoded")) as folder:
    raise SystemExit("the next write fails before it finishes")
"""


def kill_when_ready(repo: Path, writer: str, ready: str) -> None:
    """Run `writer` in `repo` and SIGKILL it once it prints `ready`."""
    process = subprocess.Popen(
        [sys.executable, "-c", writer], cwd=repo, env=clean_environment(), stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().decode() == ready + "\n"
    finally:
        process.kill()
        process.wait(timeout=30)


def test_a_kill_between_the_renames_of_a_folder_is_repaired_by_the_next_write(
    dvc_repo: Path,
) -> None:
    encoded = dvc_repo / "data" / "encoded"
    before = {path.name: path.read_bytes() for path in encoded.iterdir()}
    kill_when_ready(dvc_repo, KILLED_BETWEEN_RENAMES, "between")
    assert not encoded.exists()
    assert sorted(path.suffix for path in dvc_repo.glob("data/.encoded.*")) == [".old", ".tmp"]
    # The next writer puts the old folder back first, so even a failed write leaves it intact.
    result = run_in(dvc_repo, [sys.executable, "-c", FAILED_FOLDER_WRITE])
    assert result.returncode == 1
    assert {path.name: path.read_bytes() for path in encoded.iterdir()} == before
    assert list(dvc_repo.glob("data/.encoded.*")) == []
    assert_up_to_date(dvc_repo)


def test_the_next_run_of_a_stage_removes_a_killed_writers_temporary_file(dvc_repo: Path) -> None:
    kill_when_ready(dvc_repo, HALF_WRITTEN_FILE, "writing")
    assert len(list(dvc_repo.glob("data/raw/.corpus.txt.*.tmp"))) == 1
    result = run_module("download", cwd=dvc_repo, timeout=DVC_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    assert list(dvc_repo.glob("data/raw/.corpus.txt.*")) == []
    assert_up_to_date(dvc_repo)


def test_outputs_follow_the_umask(tmp_path: Path) -> None:
    project = Project.create(tmp_path)
    result = project.run("download", preexec_fn=lambda: os.umask(0o027) and None)
    assert result.returncode == 0, result.stderr
    assert oct((project.root / "data/raw/corpus.txt").stat().st_mode & 0o777) == oct(0o640)
    project.run_ok("clean", "validate")
    result = project.run("encode", preexec_fn=lambda: os.umask(0o077) and None)
    assert result.returncode == 0, result.stderr
    encoded = project.root / "data" / "encoded"
    assert oct(encoded.stat().st_mode & 0o777) == oct(0o700)
    modes = {oct(path.stat().st_mode & 0o777) for path in encoded.iterdir()}
    assert modes == {oct(0o600)}


# --- (2) disk full --------------------------------------------------------------------------------

FILE_SIZE_LIMIT = 1000  # bytes; every stage's first output is larger on the tiny corpus


def limit_file_size(limit: int) -> Callable[[], None]:
    """A `preexec_fn`: writes past `limit` bytes fail with EFBIG, as on a full disk."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.parametrize(
    ("stage", "path"),
    [
        ("download", "data/raw/corpus.txt"),
        ("clean", "data/clean/corpus.txt"),
        ("validate", "reports/validation"),
        ("encode", "data/encoded/train_ids.npy"),
    ],
)
def test_a_full_disk_fails_in_one_line_and_keeps_the_old_outputs(
    tmp_path: Path, stage: str, path: str
) -> None:
    project = Project.create(tmp_path)
    project.run_ok(*STAGES[: STAGES.index(stage)])
    check_refusal(
        project,
        stage,
        f"{stage}: error: File too large: {path}",
        preexec_fn=limit_file_size(FILE_SIZE_LIMIT),
    )
    assert set(OUTPUTS[stage]) <= set(project.snapshot())


# A real full disk under models/: a 256 kB tmpfs, filled but for `free_kb`, mounted in a private
# user and mount namespace (`unshare`, no root needed where user namespaces are enabled), where
# train runs; what is left in models/ is listed before the namespace, and its tmpfs, go away.
FULL_DISK_TRAIN = """
mount -t tmpfs -o size=256k tmpfs models || exit 99
dd if=/dev/zero of=models/fill bs=1k count=$((256 - $1)) 2>/dev/null
"$0" -m pipeline.train
status=$?
echo "--- left in models/:"
find models -mindepth 1 ! -name fill | sort
exit $status
"""


def can_mount_in_a_namespace() -> bool:
    probe = ["unshare", "--user", "--map-root-user", "--mount", "true"]
    try:
        return subprocess.run(probe, capture_output=True, check=False).returncode == 0
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not can_mount_in_a_namespace(), reason="needs unshare and user namespaces")
@pytest.mark.parametrize("free_kb", [8, 96], ids=["full-at-once", "full-after-a-checkpoint"])
def test_training_on_a_full_disk_fails_in_one_line_without_a_crash(
    tmp_path: Path, free_kb: int
) -> None:
    """HDF5 writing straight to a full disk crashed the interpreter (exit 139) after dozens of
    h5py tracebacks; the weights are now built in memory and written by Python."""
    project = Project.create(tmp_path)
    project.run_ok(*STAGES)
    (project.root / "models").mkdir()
    command = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", FULL_DISK_TRAIN]
    result = subprocess.run(
        [*command, sys.executable, str(free_kb)],
        cwd=project.root,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=DVC_TIMEOUT_S,
        check=False,
    )
    line = error_line(result, "train")  # exit 1, one line, no traceback
    assert line == "train: error: No space left on device: models/.checkpoints/train", line
    assert "h5py" not in result.stderr
    left = result.stdout.split("--- left in models/:\n")[1].split()
    # Nothing half-written: no model, no temporary file; at most a whole earlier checkpoint.
    assert not [path for path in left if path.endswith((".tmp", ".old", "model.keras"))], left
    assert "models/model.keras" not in left


# --- (3) two `dvc repro` at once ----------------------------------------------------------------


def held_corpus(release: threading.Event, requested: threading.Event) -> Handler:
    """A route that answers with the corpus only once `release` is set, so the download stage
    of whoever asked is held inside its stage (and DVC's lock on its outputs) until then."""

    def handle(request: BaseHTTPRequestHandler) -> None:
        requested.set()
        release.wait(timeout=DVC_TIMEOUT_S)
        reply(200, CORPUS)(request)

    return handle


def test_a_second_repro_is_refused_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    release, requested = threading.Event(), threading.Event()
    with serve() as server:
        server.routes["/corpus.txt"] = held_corpus(release, requested)
        source = {"name": "held", "kind": "http", "sha256": None, "url": f"{server.url}/corpus.txt"}
        repo = init_repo(
            copy_project(tmp_path / "repo", tiny_params(download={"sources": [source]})),
            clean_environment(),
        )
        first = subprocess.Popen(
            ["dvc", "repro", "download"],
            cwd=repo,
            env=clean_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            assert requested.wait(timeout=120), "the first repro never reached its download"
            # The first repro is now inside its download stage, waiting for the server.
            try:
                second = run_dvc(repo, "repro", "download")
            finally:
                release.set()  # lets the first repro finish
            assert second.returncode != 0
            # DVC releases its repository lock while a stage runs, but keeps a lock
            # (`.dvc/tmp/rwlock`) on that stage's outputs: a second repro of it is refused.
            refusal = second.stderr + second.stdout
            assert "lock" in refusal.lower(), refusal
            assert "is busy" in refusal or "Unable to acquire lock" in refusal, refusal
            output, _ = first.communicate(timeout=DVC_TIMEOUT_S)
            assert first.returncode == 0, output
        finally:
            release.set()
            if first.poll() is None:
                os.killpg(first.pid, signal.SIGKILL)
                first.wait(timeout=30)
    assert (repo / "data/raw/corpus.txt").read_bytes() == CORPUS
    status = run_dvc(repo, "status", "download")  # the lock is released
    assert "Data and pipelines are up to date." in status.stdout, status.stdout


# --- (4) MLflow store unreachable -----------------------------------------------------------------


@pytest.fixture(scope="module")
def unreachable_store_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], float, str, Project, dict[str, bytes]]:
    """`python -m pipeline.train` with MLFLOW_TRACKING_URI pointing at a closed port."""
    project = Project.create(tmp_path_factory.mktemp("unreachable_store"))
    project.run_ok(*STAGES)
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = clean_environment(
        MLFLOW_TRACKING_URI=uri,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
        MLFLOW_HTTP_REQUEST_TIMEOUT="5",
    )
    before = project.snapshot()
    started = time.monotonic()
    result = project.run("train", env)
    return result, time.monotonic() - started, uri, project, before


def test_train_stops_quickly_and_writes_nothing_when_mlflow_is_unreachable(
    unreachable_store_run: tuple[subprocess.CompletedProcess[str], float, str, Project, dict],
) -> None:
    result, seconds, _, project, before = unreachable_store_run
    assert result.returncode != 0, result.stderr
    assert seconds < 60
    assert project.snapshot() == before  # no model, no history


def test_train_names_the_unreachable_store_in_one_line(
    unreachable_store_run: tuple[subprocess.CompletedProcess[str], float, str, Project, dict],
) -> None:
    result, _, uri, _, _ = unreachable_store_run
    line = error_line(result, "train")
    assert uri in line
    assert "MLflow" in line


# --- (5) MLflow store damaged or held by another process ----------------------------------------


@pytest.fixture(scope="module")
def encoded_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A project where the data stages have run, so `train` goes straight to the store."""
    project = Project.create(tmp_path_factory.mktemp("store_faults"))
    project.run_ok(*STAGES)
    return project


def train_refused(project: Project, env: dict[str, str] | None = None) -> str:
    """Run train; it must fail in one line and leave every file as it was (but the empty lock
    file that guards the store's creation). Returns the line."""

    def files() -> dict[str, bytes]:
        return {k: v for k, v in project.snapshot().items() if not k.endswith(".db.lock")}

    before = files()
    # Not `project.run`: train imports TensorFlow and builds the model before it opens the
    # store, which on a loaded 2-core machine can take longer than a data stage's time limit.
    result = run_module("train", cwd=project.root, env=env, timeout=DVC_TIMEOUT_S)
    line = error_line(result, "train")
    assert files() == before
    return line


def test_a_damaged_sqlite_store_fails_train_in_one_line(encoded_project: Project) -> None:
    store = encoded_project.root / "mlflow.db"  # the default store
    store.write_bytes(b"not an SQLite database, e.g. a half-copied file\n" * 200)
    try:
        line = train_refused(encoded_project)
    finally:
        store.unlink()
    assert f"MLflow tracking store sqlite:///{store}" in line
    assert "is damaged (file is not a database); move the file aside" in line


# Another process in the middle of a write: it holds SQLite's RESERVED lock, so readers pass
# and every other writer waits for the URI's `timeout`, then gets "database is locked".
HOLD_SQLITE_WRITE_LOCK = """
import sqlite3, sys, time
holder = sqlite3.connect(sys.argv[1], isolation_level=None)
holder.execute("CREATE TABLE other (x)")
holder.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(600)
"""


def test_a_store_locked_by_another_process_fails_train_in_one_line(
    encoded_project: Project,
) -> None:
    store = encoded_project.root / "locked.db"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_SQLITE_WRITE_LOCK, str(store)], stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"locked\n"
        env = clean_environment(MLFLOW_TRACKING_URI=f"sqlite:///{store}?timeout=1")
        started = time.monotonic()
        line = train_refused(encoded_project, env)
    finally:
        holder.kill()
        holder.wait(timeout=30)
        store.unlink()
    assert "could not be used (database is locked)" in line
    # Not MLflow's ~100 s of engine retries on top of train's start-up (TensorFlow's import
    # alone takes up to a minute on a loaded 2-core machine).
    assert time.monotonic() - started < 240


def test_a_store_lock_held_past_its_timeout_fails_train_in_one_line(
    encoded_project: Project,
) -> None:
    store = encoded_project.root / "held.db"
    env = clean_environment(MLFLOW_TRACKING_URI=f"sqlite:///{store}?timeout=1")
    with FileLock(store.with_name("held.db.lock")):  # e.g. a parallel experiment creating it
        line = train_refused(encoded_project, env)
    assert f"its lock {store}.lock is still held by another process" in line
