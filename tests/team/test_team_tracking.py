"""Team mode, tracking: the pipeline against `make tracking-server` (MLflow with basic auth,
PostgreSQL, proxied artifacts), for real on 127.0.0.1.

The `team_server` fixture starts the server with docs/team.md's own command, `make
tracking-server`, and pastes the `export` lines it prints into bash; `reproduced` runs the
page's "log to the server" block in a temporary clone. Skipped only where PostgreSQL is not
installed (.ci/run installs it).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.project import ROOT, attempt, clean_environment, run, tiny_params, wait_for_queue
from tests.support.readme import section_blocks
from tests.support.refusals import error_line
from tests.support.team import TrackingServer, make_clone, run_block

# Whole `dvc repro` runs: minutes on 2 cores, more when other jobs share them.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

PAGE = "docs/team.md"  # the page whose section this test runs
SECTION = "Working as a team"
# What the page's blocks say, and what they stand for here.
README_URL = "http://127.0.0.1:5000"
README_PASSWORD_FILE = ".team/admin_password"
MEMBER = ("bob", "bob-password-for-tests")  # a second user, with no grant on any experiment


def readme_block(server: TrackingServer, start: str) -> str:
    """The team section's bash block that starts with `start`, pointed at the session's server."""
    (block,) = [block for block in section_blocks(PAGE, SECTION) if block.startswith(start)]
    return block.replace(README_URL, server.url).replace(
        README_PASSWORD_FILE, str(server.team_dir / "admin_password")
    )


@pytest.fixture(scope="module")
def reproduced(team_server, tmp_path_factory) -> tuple[Path, dict[str, Any]]:
    """A clone whose `dvc repro` (the page's block) logged to the server; (clone, its run)."""
    clone = make_clone(tmp_path_factory.mktemp("team") / "clone")
    run_block(readme_block(team_server, "export MLFLOW_TRACKING_URI"), clone, team_server.env())
    experiment = team_server.rest("experiments/get-by-name?experiment_name=tiny")["experiment"]
    runs = team_server.rest("runs/search", {"experiment_ids": [experiment["experiment_id"]]})
    (found,) = runs["runs"]
    return clone, found


def http_status(request: urllib.request.Request) -> int:
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_the_server_runs_postgres_as_an_unprivileged_user(team_server):
    pid = int((team_server.team_dir / "postgres" / "postmaster.pid").read_text().split()[0])
    status = Path(f"/proc/{pid}/status").read_text()
    real_uid = int(status.split("Uid:")[1].split()[0])
    assert real_uid != 0 if os.geteuid() == 0 else real_uid == os.geteuid()
    assert team_server.password not in team_server.output()  # printed as $(cat file), not itself


def test_the_readme_starts_the_server_with_the_command_this_session_ran(team_server):
    assert section_blocks(PAGE, SECTION)[0].split() == ["make", "tracking-server"]
    assert team_server.url.startswith("http://127.0.0.1:")


def test_a_request_without_credentials_is_refused(team_server):
    request = urllib.request.Request(f"{team_server.url}/api/2.0/mlflow/experiments/search")
    assert http_status(request) == 401


def test_repro_logs_params_metrics_model_and_version(team_server, reproduced):
    clone, found = reproduced
    assert not (clone / "mlflow.db").exists()  # nothing fell back to the local store
    assert found["info"]["status"] == "FINISHED"
    params = {p["key"]: p["value"] for p in found["data"]["params"]}
    metrics = {m["key"]: m["value"] for m in found["data"]["metrics"]}
    assert params["train.units"] == "16"
    assert metrics["test.bpc_windowed"] > 0
    run_id = found["info"]["run_id"]
    model = team_server.rest("registered-models/get?name=tiny-model")["registered_model"]
    (version,) = model["latest_versions"]
    assert (version["version"], version["run_id"]) == ("1", run_id)
    artifacts = team_server.rest(f"artifacts/list?run_id={run_id}")
    assert {"evaluation", "plots", "validation"} <= {f["path"] for f in artifacts["files"]}
    # Proxied artifacts: the model's files reached the server's store through the server.
    assert any((team_server.team_dir / "artifacts").rglob("MLmodel"))


def test_the_first_version_becomes_champion(team_server, reproduced):
    _, found = reproduced
    for name in ("tiny-model", "tiny-model-generator"):
        version = team_server.rest(f"registered-models/alias?name={name}&alias=champion")
        assert version["model_version"]["run_id"] == found["info"]["run_id"], name
    tags = {t["key"]: t["value"] for t in found["data"]["tags"]}
    assert tags["champion_decision"] == "promoted"


def test_a_user_without_permission_on_the_experiment_is_refused(team_server, reproduced):
    clone, _ = reproduced
    team_server.rest("users/create", {"username": MEMBER[0], "password": MEMBER[1]})
    # Everyone signed in may read (default_permission READ) but not log into another's experiment.
    experiment = team_server.rest("experiments/get-by-name?experiment_name=tiny", auth=MEMBER)
    create_run = urllib.request.Request(
        f"{team_server.url}/api/2.0/mlflow/runs/create",
        data=json.dumps({"experiment_id": experiment["experiment"]["experiment_id"]}).encode(),
        headers={"Content-Type": "application/json", "Authorization": basic_auth(*MEMBER)},
    )
    assert http_status(create_run) == 403
    grant = {
        "resource_type": "experiment",
        "resource_id": experiment["experiment"]["experiment_id"],
    }
    team_server.rest(
        "/api/3.0/mlflow/users/permissions/grant",
        {"username": MEMBER[0], **grant, "permission": "EDIT"},
    )
    assert http_status(create_run) == 200  # the page's way to let a teammate log there
    team_server.rest("/api/3.0/mlflow/users/permissions/revoke", {"username": MEMBER[0], **grant})
    result = run_train(clone, team_server.env(*MEMBER))
    line = error_line(result, "train")
    assert "HTTP 403" in line and "'bob'" in line and "'tiny'" in line, line
    assert MEMBER[1] not in result.stderr + result.stdout


def test_a_wrong_password_fails_fast_with_one_line(team_server, reproduced):
    clone, _ = reproduced
    wrong = "not-the-admin-password"
    started = time.monotonic()
    result = run_train(clone, team_server.env(password=wrong))
    elapsed = time.monotonic() - started
    line = error_line(result, "train")
    assert "HTTP 401" in line and "MLFLOW_TRACKING_PASSWORD" in line, line
    for secret in (wrong, team_server.password):
        assert secret not in result.stderr + result.stdout
    assert elapsed < 120, f"refused after {elapsed:.0f} s"  # TensorFlow's import, no retries


def test_failed_logins_are_limited_per_user_and_address(team_server):
    """The audit's 30 wrong passwords: past 10 (the default limit), nginx in front of MLflow
    refuses that username from this address with 429 and Retry-After, even with the right
    password; other users are unaffected."""
    user = ("carol", "carol-password-for-tests")
    team_server.rest("users/create", {"username": user[0], "password": user[1]})
    search = f"{team_server.url}/api/2.0/mlflow/experiments/search?max_results=1"

    def attempt_login(username: str, password: str) -> tuple[int, dict[str, str], str]:
        request = urllib.request.Request(
            search, headers={"Authorization": basic_auth(username, password)}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return int(response.status), dict(response.headers), response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read().decode()

    assert attempt_login(*user)[0] == 200
    started = time.monotonic()
    answers = [attempt_login(user[0], f"guess-{number}") for number in range(30)]
    elapsed = time.monotonic() - started
    statuses = [status for status, _, _ in answers]
    assert statuses == [401] * 10 + [429] * 20, statuses
    _, headers, body = answers[-1]
    assert 0 < int(headers["Retry-After"]) <= 300
    assert "too many failed logins for user 'carol' from 127.0.0.1" in json.loads(body)["message"]
    assert elapsed < 60, elapsed
    assert attempt_login(*user)[0] == 429  # locked: the right password does not get through now
    assert attempt_login(team_server.username, team_server.password)[0] == 200
    assert attempt_login("dave", "no-such-user")[0] == 401  # another name: not locked
    assert "guess-" not in team_server.output() and user[1] not in team_server.output()


def test_two_queued_experiments_write_to_the_server_at_once(team_server, reproduced, tmp_path):
    clone = make_clone(tmp_path / "clone", tiny_params(train={"epochs": 1}))
    env = team_server.env()
    # The data stages first: their outputs are the same for both experiments, and two queue
    # workers writing the same file into the shared DVC cache at once trip over each other.
    run([".venv/bin/dvc", "repro", "baseline"], clone, env)
    for units in (8, 12):
        run([".venv/bin/dvc", "exp", "run", "--queue", "-S", f"train.units={units}"], clone, env)
    # Not through captured pipes: the detached queue workers would hold them open until done.
    start = [".venv/bin/dvc", "queue", "start", "-j", "2"]
    subprocess.run(start, cwd=clone, env=env, stdout=subprocess.DEVNULL, check=True, timeout=120)
    status = wait_for_queue(clone, env, timeout_s=1100, dvc=".venv/bin/dvc")
    assert status.count("Success") == 2, status

    experiment = team_server.rest("experiments/get-by-name?experiment_name=tiny")["experiment"]
    runs = team_server.rest("runs/search", {"experiment_ids": [experiment["experiment_id"]]})
    queued = [r for r in runs["runs"] if param(r, "train.units") in {"8", "12"}]
    assert sorted(param(r, "train.units") for r in queued) == ["12", "8"]
    for found in queued:
        assert found["info"]["status"] == "FINISHED"
        assert "test.bpc_windowed" in {m["key"] for m in found["data"]["metrics"]}
    versions = team_server.rest("model-versions/search?filter=name%3D%27tiny-model%27")
    run_ids = {v["run_id"] for v in versions["model_versions"]}
    assert {r["info"]["run_id"] for r in queued} <= run_ids
    # The champion is the best of all three runs by the metric it is chosen on.
    champion = team_server.rest("registered-models/alias?name=tiny-model&alias=champion")
    all_runs = [r for r in runs["runs"] if r["info"]["run_id"] in run_ids]
    best = min(all_runs, key=lambda r: metric(r, "validation.bits_per_char"))
    assert champion["model_version"]["run_id"] == best["info"]["run_id"]


def param(found: dict[str, Any], key: str) -> str | None:
    # A run with no params has no "params" key at all (the one the permission test creates).
    return next((p["value"] for p in found["data"].get("params", []) if p["key"] == key), None)


def metric(found: dict[str, Any], key: str) -> float:
    return next(m["value"] for m in found["data"]["metrics"] if m["key"] == key)


def basic_auth(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def run_train(clone: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The train stage alone, as `dvc repro` runs it (its inputs are already there)."""
    return attempt([".venv/bin/python", "-m", "pipeline.train"], clone, env, timeout=300)


def test_without_postgresql_the_server_refuses_in_one_line(tmp_path):
    # PG_BINDIR names the PostgreSQL to use; an empty folder is a machine without it.
    env = clean_environment(PG_BINDIR=str(tmp_path), TEAM_DIR=str(tmp_path / "team"))
    result = attempt(["scripts/tracking_server.sh"], ROOT, env, timeout=60)
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert "PostgreSQL is not installed" in line and "apt-get install postgresql" in line, line
    assert not (tmp_path / "team").exists()
