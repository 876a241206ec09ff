"""pipeline/core/params.py: reading params.yaml: missing, oversized, non-UTF-8 and hostile YAML
refused in one line; any bytes either load or fail with ConfigError."""

import copy
import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.errors import ConfigError
from pipeline.core.params import load_params, parse_params
from tests.support.params import committed_raw
from tests.support.project import ROOT


def test_load_params_reports_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="params file not found"):
        load_params(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)


REPO_PARAMS = (ROOT / "params.yaml").read_text(encoding="utf-8")


YAML_PIECES = st.sampled_from(
    ["\n", " ", "  ", ":", ": ", "- ", "[", "]", "{", "}", ",", "&a", "*a", "<<", "!!", "#", "'",
     '"', "|", ">", "?", "%", "@", "`", ".inf", ".nan", "1e999", "-0", "0x1F", "~", "null",
     "true", "9" * 40, "\t", "\ufeff", "\x00", "train", "units", "download", "é"]
)  # fmt: skip


def load_text(text: str | bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "params.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
        try:
            params = load_params(path)
        except ConfigError as error:
            assert str(error).startswith(f"{path}: "), error
            return
    assert all(math.isfinite(value) for value in params.evaluate.temperatures)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_load_or_fail_with_config_error(data):
    load_text(data)


@settings(max_examples=300, deadline=None)
@given(st.lists(YAML_PIECES | st.text(max_size=5), max_size=60).map("".join))
def test_any_yaml_like_text_loads_or_fails_with_config_error(text):
    load_text(text)


@settings(max_examples=60, deadline=None)
@given(
    position=st.integers(min_value=0, max_value=len(REPO_PARAMS)),
    insertion=st.lists(YAML_PIECES, max_size=8).map("".join),
)
def test_a_damaged_params_file_loads_or_fails_with_config_error(position, insertion):
    load_text(REPO_PARAMS[:position] + insertion + REPO_PARAMS[position:])


def leaf_keys(node: object, prefix: tuple = ()) -> list[tuple]:
    """Every key path of the committed params.yaml down to its values (list items included)."""
    if isinstance(node, dict):
        return [path for key, value in node.items() for path in leaf_keys(value, (*prefix, key))]
    if isinstance(node, list) and node and all(isinstance(item, dict) for item in node):
        return [
            path for index, item in enumerate(node) for path in leaf_keys(item, (*prefix, index))
        ]
    return [prefix]


@pytest.mark.parametrize(
    "path", leaf_keys(committed_raw()), ids=lambda path: ".".join(map(str, path))
)
def test_deleting_any_key_names_it_in_one_line(path):
    raw = copy.deepcopy(committed_raw())
    parent = raw
    for part in path[:-1]:
        parent = parent[part]
    del parent[path[-1]]
    dotted = ".".join(map(str, path))
    with pytest.raises(ConfigError) as refused:
        parse_params(raw)
    assert str(refused.value).startswith(f"params.yaml: {dotted}: missing: ")
    assert ";" not in str(refused.value)  # that key alone


@pytest.mark.parametrize(
    ("section", "key", "suggested"),
    [
        ("train", "unit", "did you mean 'units'?"),
        ("mlflow", "experimen", "did you mean 'experiment'?"),
        ("train", "zzz", "known keys: architecture, embedding_dim, units,"),
    ],
)
def test_an_unknown_key_suggests_the_known_one(section, key, suggested):
    raw = copy.deepcopy(committed_raw())
    raw[section][key] = 1
    with pytest.raises(
        ConfigError, match=rf"params.yaml: {section}.{key}: unknown key \({suggested}"
    ):
        parse_params(raw)


def test_an_unknown_key_of_a_source_suggests_by_its_kind():
    raw = copy.deepcopy(committed_raw())
    raw["download"]["sources"][1]["urll"] = "https://example.org/"
    with pytest.raises(ConfigError, match=r"sources.1.urll: unknown key \(did you mean 'url'\?\)"):
        parse_params(raw)


@pytest.mark.parametrize(
    ("key", "value", "echo"),
    [("units", "many", "got 'many'"), ("units", 1.5, "got 1.5"), ("precision", "fp8", "got 'fp8'")],
)
def test_a_wrong_value_is_echoed_back(key, value, echo):
    raw = copy.deepcopy(committed_raw())
    raw["train"][key] = value
    with pytest.raises(ConfigError, match=rf"train.{key}: .*, {echo}$"):
        parse_params(raw)


def test_a_long_wrong_value_is_cut():
    raw = copy.deepcopy(committed_raw())
    raw["train"]["units"] = "x" * 1000
    with pytest.raises(ConfigError) as refused:
        parse_params(raw)
    assert str(refused.value).endswith("...") and len(str(refused.value)) < 200
