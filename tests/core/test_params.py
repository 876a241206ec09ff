"""pipeline/core/params.py: reading params.yaml: missing, oversized, non-UTF-8 and hostile YAML
refused in one line; any bytes either load or fail with ConfigError."""

import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.errors import ConfigError
from pipeline.core.params import load_params
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
