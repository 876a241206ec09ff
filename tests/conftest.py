"""Fixtures shared by every test module (helpers live in `tests/support/`)."""

import importlib
from collections.abc import Iterator
from types import ModuleType

import pytest


@pytest.fixture(scope="session")
def corpus_suite() -> Iterator[ModuleType]:
    """`pipeline.corpus_suite`, imported (with Great Expectations) once telemetry is off.

    The stage itself imports it lazily, so that importing `pipeline.validate` stays fast.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GX_ANALYTICS_ENABLED", "false")
        yield importlib.import_module("pipeline.corpus_suite")
