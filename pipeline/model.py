"""Model definitions: the default sequence model and the tutorial baseline.

`sequence`: Embedding -> stacked LSTM -> Dense logits, predicting the next character at EVERY
position of a window, so a 100-character window gives 100 training targets instead of 1.
`tutorial`: the starting tutorial's formulation, kept as a baseline: each character one scaled
float, stacked LSTM, a softmax over the single next character.

The LSTM settings keep the layers eligible for the fused cuDNN kernel on a GPU (tanh/sigmoid,
no recurrent dropout, not unrolled, with bias), so regularisation sits outside the recurrence:
dropout on the embedded inputs (`embedding_dropout`), after every LSTM layer, i.e. between layers
and before the logits (`dropout`), and decoupled weight decay in the optimiser (`weight_decay`).
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path

import keras
from keras import layers

from pipeline.config import TrainParams
from pipeline.errors import PipelineError

EMBEDDING = "embedding"
LOGITS = "logits"


def lstm_name(index: int) -> str:
    return f"lstm_{index}"


def build_sequence_model(vocab_size: int, params: TrainParams) -> keras.Model:
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")  # (batch, time)
    x = layers.Embedding(vocab_size, params.embedding_dim, name=EMBEDDING)(ids)
    if params.embedding_dropout:
        x = layers.Dropout(params.embedding_dropout, name="embedding_dropout")(x)
    for index in range(params.layers):
        x = layers.LSTM(params.units, return_sequences=True, name=lstm_name(index))(x)
        x = layers.Dropout(params.dropout, name=f"dropout_{index}")(x)  # (batch, time, units)
    # float32 logits even under a mixed-precision policy, so the softmax and loss stay stable.
    logits = layers.Dense(vocab_size, dtype="float32", name=LOGITS)(x)  # (batch, time, vocab)
    return keras.Model(ids, logits, name="charlstm_sequence")


def build_tutorial_model(vocab_size: int, window: int, params: TrainParams) -> keras.Model:
    scaled = keras.Input(shape=(window, 1), dtype="float32", name="scaled_ids")
    x = scaled
    for index in range(params.layers):
        last = index == params.layers - 1
        x = layers.LSTM(params.units, return_sequences=not last, name=lstm_name(index))(x)
        x = layers.Dropout(params.dropout, name=f"dropout_{index}")(x)
    logits = layers.Dense(vocab_size, dtype="float32", name=LOGITS)(x)  # (batch, vocab)
    return keras.Model(scaled, logits, name="charlstm_tutorial")


def architecture_of(model: keras.Model) -> str:
    """`"tutorial"` for a model that reads `(batch, window, 1)` scaled floats, else `"sequence"`."""
    return "tutorial" if len(model.input_shape) == 3 else "sequence"


def learning_rate(
    params: TrainParams, steps_per_epoch: int
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """`constant`, or `cosine`: decay over every planned step down to a tenth of the start."""
    if params.lr_schedule == "constant":
        return params.learning_rate
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=params.learning_rate,
        decay_steps=max(1, steps_per_epoch * params.epochs),
        alpha=0.1,
    )


def make_optimizer(params: TrainParams, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Adam, or AdamW when `weight_decay` > 0 (decay on the weight matrices and the embedding,
    not on biases), with the configured schedule and gradient-norm clipping."""
    rate = learning_rate(params, steps_per_epoch)
    if not params.weight_decay:
        return keras.optimizers.Adam(learning_rate=rate, clipnorm=params.clipnorm)
    optimizer = keras.optimizers.AdamW(
        learning_rate=rate, weight_decay=params.weight_decay, clipnorm=params.clipnorm
    )
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    return optimizer


def compile_model(
    model: keras.Model, params: TrainParams, steps_per_epoch: int, jit_compile: bool = False
) -> None:
    """The optimiser of `make_optimizer` and cross-entropy on the logits.

    Under a `mixed_float16` policy Keras wraps the optimiser in a `LossScaleOptimizer`, so small
    float16 gradients do not underflow; `mixed_bfloat16` needs no loss scaling. XLA is off by
    default: on the CPU it made the LSTM slower (see `bench/train_throughput.py`).
    """
    model.compile(
        optimizer=make_optimizer(params, steps_per_epoch),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )


def save_model(model: keras.Model, destination: Path) -> None:
    """`model.save`, byte for byte a function of the weights: Keras stamps the save time into
    `metadata.json` and the weights' zip entry, which would change `dvc.lock` on every run."""
    with tempfile.TemporaryDirectory() as folder:
        saved = Path(folder) / "model.keras"
        model.save(saved)
        with zipfile.ZipFile(saved) as source, zipfile.ZipFile(destination, "w") as target:
            for entry in source.infolist():
                data = source.read(entry)
                if entry.filename == "metadata.json":
                    metadata = json.loads(data)
                    metadata.pop("date_saved", None)
                    data = json.dumps(metadata, sort_keys=True).encode()
                fixed = zipfile.ZipInfo(entry.filename, date_time=(1980, 1, 1, 0, 0, 0))
                fixed.compress_type, fixed.external_attr = entry.compress_type, entry.external_attr
                target.writestr(fixed, data)


def load_model(path: Path) -> keras.Model:
    """Load a saved `.keras` model in safe mode (no arbitrary code from the file is run)."""
    try:
        return keras.models.load_model(path, safe_mode=True)
    except (OSError, ValueError, KeyError) as error:
        message = f"{path}: cannot load the model ({error}); re-run `dvc repro -f train`"
        raise PipelineError(message.replace("\n", " ")) from None
