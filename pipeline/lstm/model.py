"""Model definitions: the default sequence model and the tutorial baseline.

`sequence`: Embedding -> stacked LSTM -> Dense logits, predicting the next character at EVERY
position of a window, so a 100-character window gives 100 training targets instead of 1.
`tutorial`: the starting tutorial's formulation, kept as a baseline: each character one scaled
float, stacked LSTM, a softmax over the single next character.

The LSTM settings keep the layers eligible for the fused cuDNN kernel on a GPU (tanh/sigmoid,
no recurrent dropout, not unrolled, with bias), so regularisation sits outside the recurrence:
dropout on the embedded inputs (`embedding_dropout`), after every LSTM layer, i.e. between layers
and before the logits (`dropout`); decoupled weight decay is in the optimiser (`optimizer.py`).

The builders take a `ModelShape`, not the params schema, so the served generator, which imports
this module to load a model, carries neither `config.py` nor pydantic and PyYAML.
"""

from __future__ import annotations

import io
import json
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import keras
from keras.src.saving import saving_lib

from pipeline.core.bounded import BoundsError, check_zip_members, read_zip_json
from pipeline.core.errors import PipelineError

EMBEDDING = "embedding"
LOGITS = "logits"


def lstm_name(index: int) -> str:
    return f"lstm_{index}"


def architecture_of(model: keras.Model) -> str:
    """`"tutorial"` for a model that reads `(batch, window, 1)` scaled floats, else `"sequence"`."""
    return "tutorial" if len(model.input_shape) == 3 else "sequence"


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
                elif entry.filename == "config.json":
                    data = json.dumps(renumber_shared_objects(json.loads(data))).encode()
                fixed = zipfile.ZipInfo(entry.filename, date_time=(1980, 1, 1, 0, 0, 0))
                fixed.compress_type, fixed.external_attr = entry.compress_type, entry.external_attr
                target.writestr(fixed, data)


def save_weights(model: keras.Model, destination: Path) -> None:
    """`model.save_weights(destination)` (a `.weights.h5` file), built in memory by Keras's own
    HDF5 store, then written with Python's file I/O.

    HDF5 writing straight to a full disk fails part-way and leaves h5py objects that raise on
    every release and crash the interpreter at exit (exit 139 after dozens of tracebacks);
    Python's write raises one `OSError` (ENOSPC) that the CLI prints as one line. Keras saves a
    `.keras` file's weights the same way, into memory (`H5IOStore` over a `BytesIO`).
    """
    buffer = io.BytesIO()
    store = saving_lib.H5IOStore(buffer, mode="w")
    try:
        saving_lib._save_state(  # what `save_weights` runs, on the in-memory store
            model, weights_store=store, assets_store=None, inner_path="", visited_saveables=set()
        )
    finally:
        store.close()
    with destination.open("wb") as stream:
        stream.write(buffer.getbuffer())


def renumber_shared_objects(config: Any) -> Any:
    """Keras links objects shared between layers by `shared_object_id`, which it takes from
    Python's `id()`: a memory address, different in every process. Number them 1, 2, ... in
    order of first appearance instead; only equality between them matters on loading."""
    numbers: dict[int, int] = {}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                key: numbers.setdefault(value, len(numbers) + 1)
                if key == "shared_object_id"
                else walk(value)
                for key, value in node.items()
            }
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    return walk(config)


# Caps on a `.keras` zip's members, by declared size, checked before Keras reads any: this
# project's configs are a few kB and its weights a few MB (all of Shakespeare at 2 x 256 units:
# 9 MB), so these leave room for far larger models while no member can decompress to gigabytes.
MEMBER_CAPS = {"config.json": 16 * 2**20, "metadata.json": 2**20, "model.weights.h5": 2**30}
OTHER_MEMBER_CAP = 16 * 2**20  # an asset
MAX_MEMBERS = 64
# What Keras raises for a file it cannot rebuild a model from: a damaged zip or HDF5 file, a
# config naming a class no one registered (TypeError), weights that do not fit (ValueError).
LOAD_ERRORS = (OSError, ValueError, KeyError, TypeError, AttributeError, zipfile.BadZipFile)


def check_model_file(path: Path) -> None:
    """Refuse an oversized, damaged or deeply nested `.keras` file before Keras opens it."""
    check_zip_members(path, MEMBER_CAPS, OTHER_MEMBER_CAP, MAX_MEMBERS)
    read_zip_json(path, "config.json", MEMBER_CAPS["config.json"])


def load_model(path: Path) -> keras.Model:
    """Load a saved `.keras` model in safe mode (no arbitrary code from the file is run), its
    members checked first (`check_model_file`); any problem is one `PipelineError` line."""
    try:
        check_model_file(path)
        with warnings.catch_warnings():
            # The saved model is the plain twin of the one fitted (lstm/fused.py), compiled for
            # its loss only: its optimizer was never built, and Keras warns that it skips the
            # optimizer's variables. Nothing uses them (training resumes from its checkpoint).
            warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
            return keras.models.load_model(path, safe_mode=True)
    except BoundsError as error:
        reason = f"not a loadable .keras file: {error}"
    except RecursionError:  # Keras's deserialiser recurses on the config's nesting
        reason = "its config is nested too deeply"
    except LOAD_ERRORS as error:
        reason = str(error)
    message = f"{path}: cannot load the model ({reason}); re-run `dvc repro -f train`"
    raise PipelineError(" ".join(message.split())[:1000])
