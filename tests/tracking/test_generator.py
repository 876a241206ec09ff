"""pipeline/tracking/generator.py: the logged generator carries exactly the modules generation
imports, and needs both artifacts."""

from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from pipeline.core.errors import PipelineError
from pipeline.tracking.generator import CARRIED_MODULES, log_generator
from tests.support.generator import NAME, generator_store
from tests.support.imports import pipeline_closure, source_paths


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Iterator[str]:
    """A SQLite store whose registry holds version 1 of `NAME`; yields its tracking URI."""
    with generator_store(tmp_path_factory.mktemp("store")) as uri:
        yield uri


def test_the_logged_model_carries_exactly_the_modules_it_imports(store):
    needed = {
        path.removeprefix("pipeline/")
        for path in source_paths(pipeline_closure("pipeline.generation.served"))
    }
    assert set(CARRIED_MODULES) == needed
    code = Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}/1")) / "code" / "pipeline"
    carried = {path.relative_to(code).as_posix() for path in code.rglob("*.py")}
    assert carried == set(CARRIED_MODULES)


def test_log_generator_needs_both_files(tmp_path):
    with pytest.raises(PipelineError, match="model.keras not found"):
        log_generator(tmp_path / "model.keras", tmp_path / "vocab.json", NAME)
