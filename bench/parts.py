"""What the benches share: interleaved timing, the matmul rate they are measured against, FLOP
counts, the models and samplers as the pipeline builds them, and the former ("today's") paths
they are compared with.

Every bench on a shared machine is noisy, so the paths compared run in one process, interleaved
(A B A B ...), and a result is the median over rounds of the paired ratio.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from pipeline.core.config import TrainParams
from pipeline.corpus.encoded import EncodedData
from pipeline.generation.sampler import SequenceSampler
from pipeline.lstm.builders import build_model
from pipeline.lstm.datasets import training_dataset, training_steps
from pipeline.lstm.fused import fused_twin
from pipeline.lstm.optimizer import compile_model


def cpu_model() -> str:
    """`lscpu`'s model name and CPU count, for the record of a run."""
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown CPU"
    fields = dict(line.split(":", 1) for line in lines.splitlines() if ":" in line)
    name = fields.get("Model name", "unknown CPU").strip()
    return f"{name}, {fields.get('CPU(s)', '?').strip()} CPUs"


def seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def interleave(runs: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Each run's seconds in every round, the runs taking turns (A B A B ...)."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            times[name].append(seconds(run))
    return times


def median_ratio(slow: list[float], fast: list[float]) -> float:
    """The median over rounds of `slow / fast`: the speed-up, paired round by round."""
    return statistics.median(a / b for a, b in zip(slow, fast, strict=True))


def matmul_flops_per_second(size: int = 1024, repeats: int = 20) -> float:
    """float32 `size` x `size` matmul FLOP rate in TensorFlow, best of three timings."""
    a, b = tf.random.normal((size, size)), tf.random.normal((size, size))
    multiply = tf.function(tf.matmul)
    multiply(a, b).numpy()

    def run() -> None:
        for _ in range(repeats):
            product = multiply(a, b)
        product.numpy()

    return 2 * size**3 * repeats / min(seconds(run) for _ in range(3))


def forward_flops_per_char(params: TrainParams, vocab_size: int) -> int:
    """Multiply-adds x 2 of one character through the LSTM stack and the output layer."""
    flops, width = 0, params.embedding_dim if params.architecture == "sequence" else 1
    for _ in range(params.layers):
        flops += 2 * 4 * params.units * (width + params.units)
        width = params.units
    return flops + 2 * params.units * vocab_size


def targets_per_step(params: TrainParams, data: EncodedData) -> int:
    return params.batch_size * (1 if params.architecture == "tutorial" else data.spec.seq_len)


@dataclass
class Trainer:
    """A compiled model on the pipeline's training stream: `plain` is Keras' own LSTM loop (the
    code before the fused twin), else the twin `pipeline.lstm.fitting` fits."""

    params: TrainParams
    data: EncodedData
    plain: bool

    def __post_init__(self) -> None:
        keras.utils.set_random_seed(self.params.seed)
        model = build_model(len(self.data.vocabulary), self.params)
        self.model = model if self.plain else fused_twin(model)
        compile_model(self.model, self.params, training_steps(self.data, self.params))
        self.stream, _ = training_dataset(self.data, self.params)

    def fit(self, steps: int) -> None:
        self.model.fit(self.stream, steps_per_epoch=steps, epochs=1, verbose=0)

    def chars_per_second(self, seconds_taken: float, steps: int) -> float:
        return targets_per_step(self.params, self.data) * steps / seconds_taken


class FormerSampler(SequenceSampler):
    """Today's code before the XLA sampler: the graph-only loop and the categorical draw."""

    jit_compile = False


def lstm_weights(model: keras.Model) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """`(kernel, recurrent_kernel, bias)` of each LSTM layer, as numpy arrays."""
    cells = [layer.cell for layer in model.layers if isinstance(layer, keras.layers.LSTM)]
    return [(c.kernel.numpy(), c.recurrent_kernel.numpy(), c.bias.numpy()) for c in cells]


def matvec_chain(model: keras.Model) -> Callable[[int], None]:
    """The bound of one stream: per character only the model's matrix-vector products, in numpy,
    with the first layer's input product folded into a lookup (three products: the first
    layer's recurrent one, the second's input and recurrent ones as one, the logits)."""
    layers = lstm_weights(model)
    logits = model.get_layer("logits").kernel.numpy()
    first = layers[0][1]
    stacked = [np.concatenate([kernel, recurrent]) for kernel, recurrent, _ in layers[1:]]
    units = first.shape[0]

    def run(chars: int) -> None:
        h = [np.zeros((1, units), np.float32) for _ in layers]
        for _ in range(chars):
            first_gates = h[0] @ first
            for index, weights in enumerate(stacked, 1):
                gates = np.concatenate([h[index - 1], h[index]], axis=1) @ weights
            scores = h[-1] @ logits
        del first_gates, gates, scores

    return run


def share(flops_per_second: float, matmul: float) -> str:
    return f"{flops_per_second / 1e9:6.1f} GFLOP/s = {flops_per_second / matmul:5.1%} of matmul"
