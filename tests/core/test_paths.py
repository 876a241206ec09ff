"""pipeline/core/paths.py: the one home of artifact paths (tests/test_stages.py checks dvc.yaml
against it)."""

from pathlib import PurePath

import pytest

from pipeline.core import paths

REGISTRY = {name: value for name, value in vars(paths).items() if isinstance(value, PurePath)}


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_ids_file_names_one_split(split):
    assert paths.ids_file(split) == f"{split}_ids.npy"


def test_every_path_is_relative_to_the_repository_root():
    assert REGISTRY
    absolute = sorted(name for name, path in REGISTRY.items() if path.is_absolute())
    assert not absolute


def test_every_path_lives_under_data_models_or_reports():
    tops = {path.parts[0] for path in REGISTRY.values()}
    assert tops <= {"data", "models", "reports"}


def test_no_two_names_for_one_path():
    by_path: dict[PurePath, list[str]] = {}
    for name, path in REGISTRY.items():
        by_path.setdefault(path, []).append(name)
    assert not [names for names in by_path.values() if len(names) > 1]
