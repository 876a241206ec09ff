"""Data-parallel training gives the single-device result: real strategies, real processes.

Each run happens in its own Python process, because TensorFlow fixes its devices (and a
MultiWorkerMirroredStrategy its cluster) when it starts:
- one device (the reference);
- MirroredStrategy over the CPU split into two logical devices;
- MultiWorkerMirroredStrategy over two worker processes on 127.0.0.1 (collectives over gRPC).

All three train the same tiny model with the same seed for two epochs, with gradient clipping
active and a last validation batch that leaves one replica nothing. Each replica gets half of every
global batch, and the gradients are summed before clipping (`distribute.clip_summed_gradients`), so
the math is the same; only float32 summation order differs. Observed differences are ~1e-7;
the tolerance, TOLERANCE = 1e-5, is 100 times that and far below the ~1e-2 a single optimiser
step changes the weights (clipping each replica's share separately, Keras's default, already
breaks it).
"""

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from pipeline.core.errors import PipelineError
from pipeline.lstm import distribute
from tests.support.corpora import LINES
from tests.support.project import ROOT, clean_environment
from tests.support.servers import free_ports

TOLERANCE = 1e-5
# The witches' first six lines and a blank one, 14 times: the window counts below depend on it.
CORPUS_TEXT = "\n".join([*LINES[:6], ""] * 14)

# batch 10 over 21 validation windows: the last batch has 1 row, so the second replica's
# half of it is empty; clipnorm 0.1 is small enough to clip every step.
TRAIN_PARAMS = {
    "embedding_dim": 8,
    "units": 16,
    "layers": 1,
    "dropout": 0.0,
    "embedding_dropout": 0.0,
    "weight_decay": 0.0,
    "average_from_best": False,
    "batch_size": 10,
    "epochs": 2,
    "clipnorm": 0.1,
    "patience": 5,
    "seed": 3,
}

WORKER = """
import json, os, sys
from pathlib import Path

import tensorflow as tf

if os.environ.get("SPLIT_CPU") == "1":  # must happen before TensorFlow initialises its devices
    cpu = tf.config.list_physical_devices("CPU")[0]
    config = [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    tf.config.set_logical_device_configuration(cpu, config)

import keras
import numpy as np

from pipeline.core.config import EncodeParams, TrainParams
from pipeline.corpus.encoded import EncodedData
from pipeline.encode import encode_corpus
from pipeline.lstm import checkpoints, distribute, early_stopping, signals
from pipeline.lstm.datasets import training_steps
from pipeline.lstm.fitting import TrainingJob, create_model, fit_model
from tests.support.params import committed

params = committed(TrainParams, **json.loads(os.environ["TRAIN_PARAMS"]))
strategy = distribute.create_strategy(params.distribution)
keras.utils.set_random_seed(params.seed)
encode = committed(EncodeParams, seq_len=20, stride=10, val_fraction=0.2)
data = EncodedData(*encode_corpus(Path(os.environ["CORPUS"]).read_text(), encode))
steps = training_steps(data, params)
model, scorer = create_model(len(data.vocabulary), params, steps, strategy)
out = Path(sys.argv[1])
stopping = early_stopping.ResumableEarlyStopping(params.patience)
state = checkpoints.EpochCheckpoint(
    out.with_suffix(".checkpoint"), stopping, "test", signals.SignalGuard()
)
job = TrainingJob(params, model, scorer, data, strategy, resume=None, steps=steps)
history = fit_model(job, state, [])
np.savez(out, *model.get_weights(), loss=history["loss"], val_loss=history["val_loss"])
print(distribute.describe_strategy(strategy), distribute.is_chief(strategy))
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("distribute")
    (folder / "worker.py").write_text(WORKER)
    (folder / "corpus.txt").write_text(CORPUS_TEXT)
    return folder


def start(workspace: Path, name: str, distribution: str, **env: str) -> subprocess.Popen:
    environment = clean_environment(
        PYTHONPATH=str(ROOT),
        CORPUS=str(workspace / "corpus.txt"),
        TRAIN_PARAMS=json.dumps({**TRAIN_PARAMS, "distribution": distribution}),
        **env,
    )
    command = [sys.executable, str(workspace / "worker.py"), str(workspace / f"{name}.npz")]
    return subprocess.Popen(
        command,
        cwd=workspace,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen, timeout: float = 120) -> str:
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"worker timed out:\n{output[-3000:]}")
    assert process.returncode == 0, output[-3000:]
    return output.strip().splitlines()[-1]


def load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as arrays:
        return {key: arrays[key] for key in arrays.files}


def assert_same_training(result: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> None:
    assert result.keys() == reference.keys()
    for key, expected in reference.items():
        np.testing.assert_allclose(
            result[key], expected, rtol=TOLERANCE, atol=TOLERANCE, err_msg=key
        )


@pytest.fixture(scope="module")
def reference(workspace) -> dict[str, np.ndarray]:
    summary = finish(start(workspace, "one_device", "none"))
    assert summary == "one device True"
    return load(workspace / "one_device.npz")


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus_matches_one_device(workspace, reference):
    summary = finish(start(workspace, "mirrored", "mirrored", SPLIT_CPU="1"))
    assert summary == "MirroredStrategy x2 True"
    assert_same_training(load(workspace / "mirrored.npz"), reference)


@pytest.mark.slow
def test_two_workers_on_loopback_match_one_device(workspace, reference):
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    workers = [
        start(
            workspace,
            f"worker{index}",
            "multi_worker",
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        )
        for index in range(2)
    ]
    summaries = [finish(worker) for worker in workers]
    assert summaries == [
        "MultiWorkerMirroredStrategy x2 True",
        "MultiWorkerMirroredStrategy x2 False",
    ]
    chief, other = load(workspace / "worker0.npz"), load(workspace / "worker1.npz")
    assert_same_training(chief, reference)
    for key in chief:  # synchronous training: both workers hold the very same weights
        np.testing.assert_array_equal(chief[key], other[key], err_msg=key)


def test_default_strategy_is_one_chief_device():
    strategy = distribute.create_strategy("none")
    assert strategy.num_replicas_in_sync == 1
    assert distribute.is_chief(strategy)
    assert distribute.describe_strategy(strategy) == "one device"


def test_auto_without_several_gpus_uses_one_device():
    if len(tf.config.list_physical_devices("GPU")) > 1:
        pytest.skip("several GPUs: auto mirrors")
    assert distribute.create_strategy("auto").num_replicas_in_sync == 1


def test_multi_worker_without_tf_config_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(PipelineError, match="needs TF_CONFIG|TF_CONFIG is not set"):
        distribute.create_strategy("multi_worker")


def test_a_batch_that_does_not_split_over_the_replicas_is_refused():
    distribute.check_batch_size(64, 2)
    with pytest.raises(PipelineError, match="batch_size 10 does not split evenly over 4 replicas"):
        distribute.check_batch_size(10, 4)


def test_task_description_reads_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.task_description() == "single task"
    config = {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    assert distribute.task_description() == "worker 1 of 2"


def test_clipping_uses_the_norm_of_the_summed_sparse_gradient():
    optimizer = keras.optimizers.Adam(clipnorm=1.0)
    # Character 0 seen twice in a batch: two rows of (3, 0), i.e. a dense row (6, 0).
    sparse = tf.IndexedSlices(
        tf.constant([[3.0, 0.0], [3.0, 0.0]]), tf.constant([0, 0]), tf.constant([2, 2])
    )
    distribute.clip_summed_gradients(optimizer)
    (clipped,) = optimizer._clip_gradients([sparse])
    np.testing.assert_allclose(clipped.numpy(), [[1.0, 0.0], [0.0, 0.0]], atol=1e-6)
