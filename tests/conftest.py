"""Fixtures shared by every test module (helpers live in `tests/support/`)."""

import importlib
from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.support.team import TrackingServer, postgres_installed, s3_server, tracking_server


@pytest.fixture(scope="session")
def corpus_suite() -> Iterator[ModuleType]:
    """`pipeline.quality.suite`, imported (with Great Expectations) once telemetry is off.

    The stage itself imports it lazily, so that importing `pipeline.validate` stays fast.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GX_ANALYTICS_ENABLED", "false")
        yield importlib.import_module("pipeline.quality.suite")


@pytest.fixture(scope="session")
def team_server() -> Iterator[TrackingServer]:
    """One `make tracking-server` (MLflow, PostgreSQL, basic auth) for the whole session."""
    if not postgres_installed():
        pytest.skip(
            "PostgreSQL is not installed (no initdb): `apt-get install postgresql` to run the "
            "team tests (.ci/run installs it)"
        )
    with tracking_server() as server:
        yield server


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A local S3 API server (moto) for the session: the endpoint URL of an empty store."""
    with s3_server() as endpoint:
        yield endpoint
