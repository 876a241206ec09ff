"""Team mode for the tests: `make tracking-server` (MLflow + PostgreSQL + basic auth) and a local
S3 API server (moto), each started the way a user starts it, on free ports of 127.0.0.1."""

from __future__ import annotations

import base64
import contextlib
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.project import ROOT, clean_environment, copy_project, init_repo, run
from tests.support.servers import free_port, wait_for_http

START_TIMEOUT_S = 300  # MLflow's first start creates its tables: slow on a busy 2-core machine


def postgres_installed() -> bool:
    """Whether `make tracking-server` can find PostgreSQL's initdb (on PATH or Debian's folder)."""
    return bool(shutil.which("initdb") or glob.glob("/usr/lib/postgresql/*/bin/initdb"))


@dataclass
class TrackingServer:
    """A running `make tracking-server`: its URL, admin login, state folder and console output."""

    url: str
    username: str
    password: str
    team_dir: Path
    log: Path

    def env(self, username: str | None = None, password: str | None = None) -> dict[str, str]:
        """A clean environment that logs to this server as `username` (default: the admin)."""
        return clean_environment(
            MLFLOW_TRACKING_URI=self.url,
            MLFLOW_TRACKING_USERNAME=username or self.username,
            MLFLOW_TRACKING_PASSWORD=password or self.password,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def rest(
        self, path: str, body: dict[str, Any] | None = None, auth: tuple[str, str] | None = None
    ) -> Any:
        """Call the REST API (`/api/2.0/mlflow/<path>`, or `/api/3.0/...` given in full) as
        `auth` (default: the admin); POST when there is a body. HTTP errors raise."""
        username, password = auth or (self.username, self.password)
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        url = f"{self.url}{path}" if path.startswith("/") else f"{self.url}/api/2.0/mlflow/{path}"
        request = urllib.request.Request(
            url,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json", "Authorization": f"Basic {token}"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)


def wait_for_line(log: Path, pattern: str, process: subprocess.Popen[bytes]) -> str:
    """Wait until the log holds a line matching `pattern`; fail early if `process` exits."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not re.search(pattern, text := log.read_text(errors="replace"), flags=re.MULTILINE):
        assert process.poll() is None, f"exited with {process.returncode}:\n{text}"
        assert time.monotonic() < deadline, f"no {pattern!r} in {START_TIMEOUT_S} s:\n{text}"
        time.sleep(1)
    return text


def shell_exports(output: str) -> tuple[str, str, str]:
    """Run the `export` lines that `make tracking-server` printed in bash, as a user pastes them,
    and return the MLFLOW_TRACKING_URI, _USERNAME and _PASSWORD they set."""
    lines = [line for line in output.splitlines() if line.strip().startswith("export ")]
    names = ("URI", "USERNAME", "PASSWORD")
    show = 'printf "%s\\n"' + "".join(f' "$MLFLOW_TRACKING_{name}"' for name in names)
    script = "\n".join([*lines, show])
    result = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    url, username, password = result.stdout.splitlines()
    return url, username, password


@contextlib.contextmanager
def tracking_server() -> Iterator[TrackingServer]:
    """`make tracking-server` in this checkout, as a user runs it, with its state in a throwaway
    folder and on free ports; Ctrl-C (SIGINT to its process group) at the end, as a user stops it.

    The state folder is under the system's temporary folder, not pytest's (private to root): run
    as root, the script runs PostgreSQL as an unprivileged user, who must reach its data folder.
    """
    parent = Path(tempfile.mkdtemp(prefix="charlstm-team-"))
    parent.chmod(0o711)
    team_dir = parent / "team"
    log = parent / "console.log"
    port = free_port()
    env = clean_environment(
        TEAM_DIR=str(team_dir),
        TRACKING_PORT=str(port),
        POSTGRES_PORT=str(free_port()),
    )
    with log.open("wb") as console:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "tracking-server"],
            cwd=ROOT,
            env=env,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        text = wait_for_line(log, r"^\s*export MLFLOW_TRACKING_PASSWORD=", process)
        url, username, password = shell_exports(text)
        server = TrackingServer(url, username, password, team_dir, log)
        wait_for_http(f"{server.url}/health", process)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        # make exits at once; the script goes on stopping MLflow, then PostgreSQL, in its data
        # folder: let it finish before that folder goes.
        deadline = time.monotonic() + 60
        while b"tracking-server: stopped" not in log.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.5)
        kill_servers_on(port)
        shutil.rmtree(parent, ignore_errors=True)


def kill_servers_on(port: int) -> None:
    """SIGKILL any process still started with `--port <port>`: a server that a killed or timed-out
    test left behind must not outlive the session (one once held 1 GB after a parallel run)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            args = cmdline.read_bytes().split(b"\0")
            pairs = zip(args, args[1:], strict=False)
            if (b"--port", str(port).encode()) in pairs:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(cmdline.parent.name), signal.SIGKILL)


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """moto's S3 API server (standing in for S3 or MinIO) on a free port; yields its endpoint."""
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(endpoint, process, timeout_s=60)
        yield endpoint
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def make_clone(folder: Path, params: dict[str, Any] | None = None) -> Path:
    """A committed repository as a team member has it: the pipeline (tiny params unless given),
    the Makefile and scripts, and `.venv` (this checkout's, linked, and kept out of git)."""
    copy_project(folder, params, extras=("dvc.yaml", ".gitignore", "Makefile", "scripts"))
    init_repo(folder)
    link_venv(folder)
    return folder


def link_venv(folder: Path) -> None:
    """Give a clone this checkout's `.venv`, as `make setup` would have made one there."""
    (folder / ".venv").symlink_to(ROOT / ".venv")
    with (folder / ".git" / "info" / "exclude").open("a", encoding="utf-8") as exclude:
        exclude.write("/.venv\n")  # .gitignore's `/.venv/` matches a folder, not this link


def run_block(block: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a README block in bash, stopping at the first failing command."""
    return run(["bash", "-euo", "pipefail", "-c", block], cwd, env)
