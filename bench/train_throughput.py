"""Training throughput: the default sequence model against the tutorial's formulation, one run.

    python bench/train_throughput.py              # all of it: ~20 min on 2 CPU cores
    python bench/train_throughput.py --quick      # (a) and (b) only: ~3 min
    python bench/train_throughput.py --variants   # also: width, batch size, XLA, bfloat16 for (b)

Run from the repository root after `dvc repro encode` (reads `params.yaml` and `data/encoded/`).
Both models are built, compiled and fed exactly as `pipeline.train` does (real `tf.data` stream,
cosine schedule, clipping), on the default strategy. Everything is measured in this one process,
one after another, so the ratios compare like with like on a shared, noisy machine.

(a) Supervised character targets per second after `--warmup` steps, timing `--steps` steps
    (best of three timings, as every rate here):
    the tutorial (50-character windows, batch 40, 2 x LSTM(300), dropout 0.2: 40 targets a step)
    and the default model from params.yaml (batch x seq_len targets a step), then the default
    again with TensorFlow's op determinism on (what `train.deterministic` costs).
(b) The default model's training FLOP rate as a share of a float32 1024 x 1024 `tf.matmul`
    measured here. Training FLOPs = 3 x forward; forward per character and layer
    2 * 4 * units * (input + units), plus 2 * units * vocab for the output layer.
(c) Training wall time (validation excluded) until held-out bits per character reach
    `--threshold`: the default model is trained epoch by epoch until it gets there. The tutorial
    is trained for `--tutorial-budget-s` seconds, evaluated every `--eval-every` steps; if it has
    not reached the threshold by then, the time is EXTRAPOLATED (and printed as such) from a
    straight-line fit of bits per character against log(steps) over the second half of its
    curve, times its measured seconds per step.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Run as a script from anywhere: the repository root holds the `pipeline` package, whose import
# also quiets TensorFlow's start-up logging (so it comes before TensorFlow's first import).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import pipeline  # noqa: E402, F401

# isort: split
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from pipeline.core.config import TrainParams
from pipeline.core.params import load_params
from pipeline.corpus.encoded import EncodedData, load_encoded  # noqa: E402
from pipeline.lstm.builders import build_model
from pipeline.lstm.datasets import (  # noqa: E402
    TUTORIAL_WINDOW,
    training_dataset,
    training_steps,
    validation_dataset,
)
from pipeline.lstm.optimizer import compile_model  # noqa: E402

REPEATS = 3  # every rate is the best of three timings: other jobs share this machine


@dataclass(frozen=True)
class Throughput:
    seconds_per_step: float
    targets_per_step: int

    @property
    def chars_per_second(self) -> float:
        return self.targets_per_step / self.seconds_per_step


def tutorial_params(default: TrainParams) -> TrainParams:
    settings = {
        "architecture": "tutorial",
        "units": 300,
        "layers": 2,
        "dropout": 0.2,
        "batch_size": 40,
    }
    return default.model_copy(update=settings)


def targets_per_step(params: TrainParams, data: EncodedData) -> int:
    return params.batch_size * (1 if params.architecture == "tutorial" else data.spec.seq_len)


def forward_flops_per_char(params: TrainParams, vocab_size: int) -> int:
    """Multiply-adds x 2 of one character through the LSTM stack and the output layer."""
    flops, width = 0, params.embedding_dim if params.architecture == "sequence" else 1
    for _ in range(params.layers):
        flops += 2 * 4 * params.units * (width + params.units)
        width = params.units
    return flops + 2 * params.units * vocab_size


def make_model(params: TrainParams, data: EncodedData, jit_compile: bool = False) -> keras.Model:
    keras.utils.set_random_seed(params.seed)
    steps = training_steps(data, params)
    model = build_model(len(data.vocabulary), params)
    compile_model(model, params, steps, jit_compile=jit_compile)
    return model


def measure_throughput(
    params: TrainParams, data: EncodedData, steps: int, warmup: int, jit_compile: bool = False
) -> Throughput:
    model = make_model(params, data, jit_compile)
    stream, _ = training_dataset(data, params)
    model.fit(stream, steps_per_epoch=warmup, epochs=1, verbose=0)  # traces and warms up
    best = math.inf
    for _ in range(REPEATS):
        start = time.perf_counter()
        model.fit(stream, steps_per_epoch=steps, epochs=1, verbose=0)
        best = min(best, time.perf_counter() - start)
    return Throughput(best / steps, targets_per_step(params, data))


def matmul_flops_per_second(size: int = 1024, repeats: int = 60) -> float:
    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    multiply = tf.function(tf.matmul)
    multiply(a, b).numpy()
    best = math.inf
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(repeats):
            product = multiply(a, b)
        product.numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 * repeats / best


class LearningCurve(keras.callbacks.Callback):
    """After every (short) epoch: held-out bits per char, and training time so far without the
    evaluation; stops at the threshold or when the training time passes the budget."""

    def __init__(self, data: EncodedData, params: TrainParams, threshold: float, budget_s: float):
        super().__init__()
        self.val = validation_dataset(data, params.architecture, params.batch_size)
        self.name, self.threshold, self.budget_s = params.architecture, threshold, budget_s
        self.points: list[tuple[int, float, float]] = []  # (steps, training seconds, bits/char)
        self.evaluating = 0.0

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        seconds = time.perf_counter() - self.start - self.evaluating
        before = time.perf_counter()
        bits = float(self.model.evaluate(self.val, verbose=0)) / math.log(2)
        self.evaluating += time.perf_counter() - before
        steps = int(self.model.optimizer.iterations.numpy())
        self.points.append((steps, seconds, bits))
        print(
            f"    {self.name}: {steps:6d} steps {seconds:7.1f} s {bits:.3f} bits/char", flush=True
        )
        self.model.stop_training = bits <= self.threshold or seconds >= self.budget_s


def train_until(
    params: TrainParams, data: EncodedData, threshold: float, budget_s: float, chunk: int
) -> list[tuple[int, float, float]]:
    """Train on the pipeline's stream with a held-out point every `chunk` steps (see
    `LearningCurve`); one `fit`, so the stream and the schedule run on as in `pipeline.train`."""
    model = make_model(params, data)
    curve = LearningCurve(data, params, threshold, budget_s)
    stream, _ = training_dataset(data, params)
    model.fit(stream, steps_per_epoch=chunk, epochs=10**6, verbose=0, callbacks=[curve])
    return curve.points


def extrapolate_seconds(curve: list[tuple[int, float, float]], threshold: float) -> float | None:
    """Seconds to `threshold` from a line bits = a + b * ln(steps) through the curve's second half,
    at the measured seconds per step; None if that half shows no progress."""
    tail = curve[len(curve) // 2 :]
    if len(tail) < 2:
        return None
    slope, intercept = np.polyfit([math.log(s) for s, _, _ in tail], [b for _, _, b in tail], 1)
    if slope >= 0:
        return None
    steps_needed = math.exp((threshold - intercept) / slope)
    return steps_needed * curve[-1][1] / curve[-1][0]


def report_throughput(default: TrainParams, data: EncodedData, args: argparse.Namespace) -> None:
    print(f"(a) training throughput ({args.steps} timed steps after {args.warmup} warm-up)")
    tutorial = measure_throughput(tutorial_params(default), data, args.tutorial_steps, args.warmup)
    sequence = measure_throughput(default, data, args.steps, args.warmup)
    for name, result in (("tutorial", tutorial), ("default", sequence)):
        print(
            f"  {name:9s} {result.seconds_per_step * 1000:8.1f} ms/step "
            f"{result.targets_per_step:6d} targets/step {result.chars_per_second:10.0f} chars/s"
        )
    ratio = sequence.chars_per_second / tutorial.chars_per_second
    print(f"  default / tutorial chars/s: {ratio:.1f}x (target >= 40x)")
    # What `train.deterministic` costs: the same model with TensorFlow's deterministic kernels.
    # Last in (a): there is no switching it off again in this process.
    tf.config.experimental.enable_op_determinism()
    deterministic = measure_throughput(default, data, args.steps, args.warmup)
    print(
        f"  default with op determinism: {deterministic.chars_per_second:10.0f} chars/s, "
        f"{deterministic.chars_per_second / sequence.chars_per_second:.2f}x the default's"
    )

    print("(b) default model FLOP rate against a float32 1024x1024 matmul")
    matmul = matmul_flops_per_second()
    variants = [("params.yaml", default, False)]
    if args.variants:
        variants += [
            ("2 x LSTM(256)", default.model_copy(update={"units": 256}), False),
            ("batch 128", default.model_copy(update={"batch_size": 128}), False),
            ("batch 256", default.model_copy(update={"batch_size": 256}), False),
            ("XLA jit_compile", default, True),
            ("mixed_bfloat16", default, False),
        ]
    vocab = len(data.vocabulary)
    for name, params, jit in variants:
        if name == "params.yaml":
            result = sequence
        else:
            result = measure_with_policy(name, params, data, args, jit)
        flops = 3 * forward_flops_per_char(params, vocab) * result.chars_per_second
        print(
            f"  {name:16s} {flops / 1e9:7.1f} GFLOP/s of {matmul / 1e9:6.1f}: "
            f"{flops / matmul:6.1%} ({result.chars_per_second:8.0f} chars/s; target >= 35%)"
        )


def measure_with_policy(
    name: str, params: TrainParams, data: EncodedData, args: argparse.Namespace, jit: bool
) -> Throughput:
    policy = "mixed_bfloat16" if name == "mixed_bfloat16" else "float32"
    keras.mixed_precision.set_global_policy(policy)
    try:
        return measure_throughput(params, data, args.steps, args.warmup, jit)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def report_time_to_threshold(
    default: TrainParams, data: EncodedData, args: argparse.Namespace
) -> None:
    print(f"(c) training time to {args.threshold} held-out bits/char (validation not timed)")
    epoch_steps = training_steps(data, default)
    sequence = train_until(default, data, args.threshold, args.default_budget_s, epoch_steps)
    tutorial = train_until(
        tutorial_params(default), data, args.threshold, args.tutorial_budget_s, args.eval_every
    )
    times = {}
    for name, curve in (("default", sequence), ("tutorial", tutorial)):
        steps, seconds, bits = curve[-1]
        if bits <= args.threshold:
            times[name] = seconds
            print(f"  {name:9s} MEASURED {seconds:9.0f} s ({steps} steps, {bits:.3f} bits/char)")
            continue
        estimate = extrapolate_seconds(curve, args.threshold)
        if estimate is None:
            print(
                f"  {name:9s} not reached in {seconds:.0f} s ({bits:.3f} bits/char) and no "
                "progress over the second half: cannot extrapolate"
            )
            continue
        times[name] = estimate
        print(
            f"  {name:9s} EXTRAPOLATED {estimate:9.0f} s = {estimate / 3600:.1f} h (reached "
            f"{bits:.3f} bits/char after {seconds:.0f} s, {steps} steps)"
        )
    if len(times) == 2:
        print(f"  tutorial / default time: {times['tutorial'] / times['default']:.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--steps", type=int, default=20, help="timed default-model steps")
    parser.add_argument("--tutorial-steps", type=int, default=100, help="timed tutorial steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--threshold", type=float, default=2.5, help="held-out bits per char")
    parser.add_argument("--default-budget-s", type=float, default=900)
    parser.add_argument("--tutorial-budget-s", type=float, default=600)
    parser.add_argument("--eval-every", type=int, default=300, help="tutorial steps per point")
    parser.add_argument("--quick", action="store_true", help="skip (c), the time to threshold")
    parser.add_argument("--variants", action="store_true", help="more (b) configurations")
    args = parser.parse_args()

    default = load_params().train
    data = load_encoded()
    print(
        f"TensorFlow {tf.__version__}, {len(tf.config.list_physical_devices('GPU'))} GPUs, "
        f"{len(data.train_ids)} training characters, vocabulary {len(data.vocabulary)}, "
        f"tutorial windows {len(data.train_ids) - TUTORIAL_WINDOW}"
    )
    report_throughput(default, data, args)
    if not args.quick:
        report_time_to_threshold(default, data, args)


if __name__ == "__main__":
    main()
