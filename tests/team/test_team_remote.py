"""Team mode, data: a shared DVC remote on an S3 API server (moto in server mode on 127.0.0.1,
standing in for S3 or MinIO), configured by `make dvc-remote-s3` with credentials only in the
environment.

The two bash blocks of docs/team.md that configure the remote run here as
they are written, in a clone that pushes and in a fresh clone that pulls; only the endpoint's
port differs.
"""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.project import clean_environment, run
from tests.support.readme import section_blocks
from tests.support.team import link_venv, make_clone, run_block

# Whole `dvc repro` runs: minutes on 2 cores, more when other jobs share them.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

PAGE = "docs/team.md"  # the page whose section this test runs
SECTION = "Working as a team"
README_ENDPOINT = "http://127.0.0.1:9000"
BUCKET = "charlstm-team"  # the page's `URL=s3://charlstm-team/dvc`


def remote_blocks(endpoint: str) -> tuple[str, str]:
    """(push block, pull block) of the page, pointed at `endpoint`."""
    blocks = [b for b in section_blocks(PAGE, SECTION) if b.startswith("make dvc-remote-s3 ")]
    push, pull = (block.replace(README_ENDPOINT, endpoint) for block in blocks)
    assert "dvc push" in push and "dvc pull" in pull
    return push, pull


def tracked_text(repo: Path, env: dict[str, str]) -> str:
    """Every file that git tracks in `repo`, concatenated (as text, bytes decoded leniently)."""
    names = run(["git", "ls-files", "-z"], repo, env).stdout.split("\0")
    return "".join((repo / n).read_text(errors="replace") for n in names if (repo / n).is_file())


def store(endpoint: str, env: dict[str, str]) -> Any:
    """An S3 client of the store at `endpoint`, with the credentials in `env`."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )


@pytest.fixture
def credentials(s3_endpoint) -> dict[str, str]:
    """A user's shell with S3 credentials exported (unique, to find any copy of them later),
    and the page's bucket created in the store."""
    env = clean_environment(
        AWS_ACCESS_KEY_ID=f"AKIA{secrets.token_hex(8).upper()}",
        AWS_SECRET_ACCESS_KEY=secrets.token_urlsafe(30),
        AWS_DEFAULT_REGION="us-east-1",
    )
    store(s3_endpoint, env).create_bucket(Bucket=BUCKET)
    return env


def test_push_to_s3_then_pull_into_a_fresh_clone_has_nothing_to_do(
    tmp_path, s3_endpoint, credentials
):
    env = credentials
    push, pull = remote_blocks(s3_endpoint)
    repo = make_clone(tmp_path / "repo")
    run([".venv/bin/dvc", "repro"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-q", "-m", "reproduced"], repo, env)
    run_block(push, repo, env)
    objects = store(s3_endpoint, env).list_objects_v2(Bucket=BUCKET, Prefix="dvc/")
    assert objects.get("KeyCount", 0) > 0, "nothing was pushed"

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
    link_venv(clone)
    assert not (clone / "models/model.keras").exists()
    result = run_block(pull, clone, env)
    for output in ("data/raw/corpus.txt", "data/encoded/train_ids.npy", "models/model.keras"):
        assert (clone / output).is_file(), output
    assert "Data and pipelines are up to date." in result.stdout

    for folder in (repo, clone):
        local_config = (folder / ".dvc/config.local").read_text()
        assert f"s3://{BUCKET}/dvc" in local_config and s3_endpoint in local_config
        committed = tracked_text(folder, env)
        assert ".dvc/config.local" not in run(["git", "ls-files"], folder, env).stdout
        for secret in (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]):
            assert secret not in committed
            assert secret not in local_config
        assert s3_endpoint not in committed  # the address stays in config.local too


def test_make_dvc_remote_s3_refuses_a_url_that_is_not_s3(tmp_path):
    repo = make_clone(tmp_path / "repo")
    result = subprocess.run(
        ["make", "--no-print-directory", "dvc-remote-s3", "URL=/mnt/store"],
        cwd=repo,
        env=clean_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "URL must be an s3:// address" in result.stderr
    assert not (repo / ".dvc/config.local").exists()
