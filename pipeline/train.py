"""Stage 5, train: encoded ids -> a trained Keras model, tracked in MLflow.

Reads `data/encoded/` and the `train` and `mlflow` params; writes `models/model.keras` (best
weights by validation loss), `models/run.json` (the MLflow run that evaluate continues) and
`reports/train_history.csv` (per-epoch losses, a `dvc plots` source).
Run with `python -m pipeline.train`; it uses a GPU when TensorFlow sees one.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import sys
from dataclasses import dataclass

import keras
import mlflow
import numpy as np
import tensorflow as tf
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec

from pipeline import files, tracking
from pipeline.cli import run_stage
from pipeline.config import MODELS_DIR, REPORTS_DIR, TrainParams, load_params
from pipeline.data import (
    TUTORIAL_WINDOW,
    EncodedData,
    load_encoded,
    sequence_dataset,
    tutorial_dataset,
)
from pipeline.errors import PipelineError
from pipeline.model import build_sequence_model, build_tutorial_model, compile_model

log = logging.getLogger(__name__)

MODEL_PATH = MODELS_DIR / "model.keras"
HISTORY_PATH = REPORTS_DIR / "train_history.csv"


@dataclass(frozen=True)
class Hardware:
    device: str  # "GPU:0 (name)" or "CPU"
    precision: str  # a Keras dtype policy name


def detect_hardware(requested_precision: str) -> Hardware:
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        device = f"GPU x{len(gpus)} ({details.get('device_name', 'unknown')})"
    else:
        device = "CPU"
    precision = requested_precision
    if precision == "auto":
        precision = "mixed_float16" if gpus else "float32"
    return Hardware(device, precision)


def make_datasets(
    data: EncodedData, params: TrainParams
) -> tuple[tf.data.Dataset, tf.data.Dataset, int]:
    """Training and validation pipelines, and the training steps per epoch."""
    seq_len, stride = data.spec.seq_len, data.spec.stride
    if params.architecture == "tutorial":
        vocab = len(data.vocabulary)
        train = tutorial_dataset(data.train_ids, vocab, params.batch_size, shuffle=True,
                                 seed=params.seed)
        val = tutorial_dataset(data.val_ids, vocab, params.batch_size, shuffle=False)
    else:
        train = sequence_dataset(data.train_ids, seq_len, stride, params.batch_size,
                                 shuffle=True, seed=params.seed)
        val = sequence_dataset(data.val_ids, seq_len, seq_len, params.batch_size, shuffle=False)
    return train, val, int(train.cardinality().numpy())


def build_model(vocab_size: int, params: TrainParams) -> keras.Model:
    if params.architecture == "tutorial":
        return build_tutorial_model(vocab_size, TUTORIAL_WINDOW, params)
    return build_sequence_model(vocab_size, params)


def model_signature(model: keras.Model) -> ModelSignature:
    input_shape = (-1, *[-1 if d is None else d for d in model.input_shape[1:]])
    output_shape = (-1, *[-1 if d is None else d for d in model.output_shape[1:]])
    input_dtype = np.int32 if model.inputs[0].dtype == "int32" else np.float32
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(input_dtype), input_shape)]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), output_shape)]),
    )


def history_csv(history: dict[str, list[float]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    keys = sorted(history)
    writer.writerow(["epoch", *keys])
    for epoch in range(len(history[keys[0]]) if keys else 0):
        writer.writerow([epoch + 1, *(f"{history[key][epoch]:.6f}" for key in keys)])
    return buffer.getvalue()


def check_finite(history: dict[str, list[float]]) -> None:
    for key, values in history.items():
        if values and not math.isfinite(values[-1]):
            raise PipelineError(
                f"training diverged: {key} became {values[-1]} at epoch {len(values)}; "
                "lower train.learning_rate or set train.clipnorm"
            )


def fit_model(
    model: keras.Model, train: tf.data.Dataset, val: tf.data.Dataset, params: TrainParams
) -> dict[str, list[float]]:
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=params.patience, restore_best_weights=True
        ),
        keras.callbacks.TerminateOnNaN(),
        mlflow.keras.MlflowCallback(),
    ]
    verbose = 1 if sys.stderr.isatty() else 2
    # shuffle=False: the tf.data pipeline already reshuffles its windows every epoch.
    fitted = model.fit(
        train, validation_data=val, epochs=params.epochs, callbacks=callbacks, verbose=verbose,
        shuffle=False,
    )
    history = {key: [float(v) for v in values] for key, values in fitted.history.items()}
    check_finite(history)
    return history


def main() -> None:
    params = load_params()
    train_params = params.train
    keras.utils.set_random_seed(train_params.seed)
    hardware = detect_hardware(train_params.precision)
    keras.mixed_precision.set_global_policy(hardware.precision)
    data = load_encoded()
    train, val, steps = make_datasets(data, train_params)
    model = build_model(len(data.vocabulary), train_params)
    compile_model(model, train_params, steps)
    log.info("%s on %s (%s), %d steps per epoch", model.name, hardware.device,
             hardware.precision, steps)

    with tracking.start_training_run(params) as run:
        mlflow.set_tags({"device": hardware.device, "precision": hardware.precision})
        mlflow.log_param("model.parameters", model.count_params())
        history = fit_model(model, train, val, train_params)
        best_epoch = int(np.argmin(history["val_loss"])) + 1
        mlflow.log_metrics({"best_val_loss": min(history["val_loss"]), "best_epoch": best_epoch,
                            "epochs_run": len(history["val_loss"])})
        with files.atomic_path(MODEL_PATH, suffix=".keras") as temporary:
            model.save(temporary)
        files.write_text(HISTORY_PATH, history_csv(history))
        mlflow.log_artifact(str(HISTORY_PATH), artifact_path="plots")
        mlflow.log_artifacts(str(REPORTS_DIR / "validation"), artifact_path="validation/docs")
        mlflow.log_artifact(str(REPORTS_DIR / "validation.json"), artifact_path="validation")
        mlflow.keras.log_model(
            model, name="model", signature=model_signature(model),
            registered_model_name=params.mlflow.registered_model,
        )
        tracking.record_run(run)
    log.info("best val_loss %.4f at epoch %d of %d", min(history["val_loss"]), best_epoch,
             len(history["val_loss"]))


if __name__ == "__main__":
    run_stage("train", main)
