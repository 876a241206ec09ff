"""Training time to a held-out bits-per-character threshold (`train_throughput.py --threshold`):
the default model against the tutorial's, on the pipeline's stream, validation not timed."""

from __future__ import annotations

import math
import time

import keras
import numpy as np

from bench.parts import Trainer
from pipeline.core.config import TrainParams
from pipeline.corpus.encoded import EncodedData
from pipeline.lstm.datasets import training_steps, validation_dataset


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
        print(f"    {self.name}: {steps:6d} steps {seconds:7.1f} s {bits:.3f} bits/char")
        self.model.stop_training = bits <= self.threshold or seconds >= self.budget_s


def train_until(
    params: TrainParams, data: EncodedData, threshold: float, budget_s: float, chunk: int
) -> list[tuple[int, float, float]]:
    """Train as `pipeline.train` does (the fused twin) with a held-out point every `chunk`
    steps; one `fit`, so the stream and the schedule run on."""
    trainer = Trainer(params, data, plain=False)
    curve = LearningCurve(data, params, threshold, budget_s)
    trainer.model.fit(
        trainer.stream, steps_per_epoch=chunk, epochs=10**6, verbose=0, callbacks=[curve]
    )
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


def report_time_to_threshold(  # noqa: PLR0913, PLR0917 (the bench's settings, passed through)
    default: TrainParams,
    tutorial: TrainParams,
    data: EncodedData,
    threshold: float,
    budgets_s: tuple[float, float],
    eval_every: int,
) -> None:
    """The default model epoch by epoch, the tutorial every `eval_every` steps, each until
    `threshold` or its budget; a tutorial short of it is EXTRAPOLATED (and printed as such)."""
    print(f"(c) training time to {threshold} held-out bits/char (validation not timed)")
    epoch_steps = training_steps(data, default)
    curves = {
        "default": train_until(default, data, threshold, budgets_s[0], epoch_steps),
        "tutorial": train_until(tutorial, data, threshold, budgets_s[1], eval_every),
    }
    times = {}
    for name, curve in curves.items():
        steps, seconds, bits = curve[-1]
        if bits <= threshold:
            times[name] = seconds
            print(f"  {name:9s} MEASURED {seconds:9.0f} s ({steps} steps, {bits:.3f} bits/char)")
            continue
        estimate = extrapolate_seconds(curve, threshold)
        if estimate is None:
            print(f"  {name:9s} not reached in {seconds:.0f} s ({bits:.3f}): cannot extrapolate")
            continue
        times[name] = estimate
        print(
            f"  {name:9s} EXTRAPOLATED {estimate:9.0f} s = {estimate / 3600:.1f} h (reached "
            f"{bits:.3f} bits/char after {seconds:.0f} s, {steps} steps)"
        )
    if len(times) == 2:
        print(f"  tutorial / default time: {times['tutorial'] / times['default']:.0f}x")
