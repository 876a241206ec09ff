"""Training throughput: Keras' own LSTM loop (the plain `fit`, the code before the fused twin)
against what `pipeline.train` fits now (`pipeline/lstm/fused.py`), interleaved in one run.

    python bench/train_throughput.py              # batch 16, batch 64, 2 x LSTM(256): ~4 min
    python bench/train_throughput.py --tutorial   # also (a): the tutorial's formulation
    python bench/train_throughput.py --threshold 2.5   # also (c): time to 2.5 bits/char
    python bench/train_throughput.py --precision       # only (d): float32 against bfloat16

Run from the repository root after `dvc repro encode` (reads `params.yaml` and `data/encoded/`).
Both models are built, compiled and fed exactly as `pipeline.train` does (real `tf.data` stream,
cosine schedule, AdamW, clipping, TensorFlow's op determinism as `train.deterministic: true`),
on the default strategy.

(b) For each configuration (params.yaml, then batch 64, then 2 x LSTM(256)): both models warm up,
    then `--rounds` rounds time `--steps` steps of each in turn (plain, fused, plain, fused, ...)
    and a float32 1024 x 1024 `tf.matmul` in between. Printed: median characters per second,
    each one's FLOP rate as a share of the matmul rate measured in the same rounds, and the
    median over rounds of the paired ratio fused / plain. Training FLOPs = 3 x forward; forward
    per character and layer 2 * 4 * units * (input + units), plus 2 * units * vocab.
(a) `--tutorial`: the tutorial (50-character windows, batch 40, 2 x LSTM(300), dropout 0.2: 40
    targets a step) against the default, both as `pipeline.train` fits them.
(c) `--threshold B`: training wall time (validation excluded) until held-out bits per character
    reach B (see `bench/curves.py`).
(d) `--precision`: the all-Shakespeare command's model (docs/results.md: 2 x LSTM(384), batch
    64, op determinism off) in float32, as train fits it (the fused twin), against
    `train.precision: mixed_bfloat16` (Keras' own loop: the twin is float32 only), interleaved
    as in (b). bfloat16 pays only where the CPU multiplies it natively (AVX512-BF16, AMX).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

# Run as a script from anywhere: the repository root holds the `pipeline` package, whose import
# also quiets TensorFlow's start-up logging (so it comes before TensorFlow's first import).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import pipeline  # noqa: E402, F401

# isort: split
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.curves import report_time_to_threshold  # noqa: E402
from bench.parts import (  # noqa: E402
    Trainer,
    cpu_model,
    forward_flops_per_char,
    interleave,
    matmul_flops_per_second,
    median_ratio,
    seconds,
    share,
)
from pipeline.core.config import TrainParams  # noqa: E402
from pipeline.core.params import load_params  # noqa: E402
from pipeline.corpus.encoded import EncodedData, load_encoded  # noqa: E402


def tutorial_params(default: TrainParams) -> TrainParams:
    settings = {"architecture": "tutorial", "units": 300, "dropout": 0.2, "batch_size": 40}
    return default.model_copy(update={"layers": 2, **settings})


def race(title: str, trainers: dict[str, Trainer], args: argparse.Namespace) -> float:
    """Two warmed-up trainers (slower first), interleaved with the matmul rate; prints one block
    and returns the median paired ratio, second over first."""
    runs: dict[str, Callable[[], object]] = {
        label: partial(trainer.fit, args.steps) for label, trainer in trainers.items()
    }
    runs["matmul"] = lambda: rates.append(matmul_flops_per_second())
    times = interleave(runs, args.rounds)
    matmul = statistics.median(rates[-args.rounds :])
    print(f"  {title} (float32 matmul {matmul / 1e9:.1f} GFLOP/s in these rounds)")
    for label, trainer in trainers.items():
        flops = 3 * forward_flops_per_char(trainer.params, len(trainer.data.vocabulary))
        rate = statistics.median(trainer.chars_per_second(t, args.steps) for t in times[label])
        print(f"    {label:14s} {rate:8.0f} chars/s  {share(rate * flops, matmul)}")
    first, second = trainers
    ratio = median_ratio(times[first], times[second])
    print(
        f"    {second} / {first}, median of {args.rounds} paired rounds: {ratio:.2f}x", flush=True
    )
    return ratio


def compare(name: str, params: TrainParams, data: EncodedData, args: argparse.Namespace) -> float:
    """Plain against fused at `params`, interleaved; prints one block, returns the ratio."""
    trainers = {
        "plain fit": Trainer(params, data, plain=True),
        "fused twin": Trainer(params, data, plain=False),
    }
    for trainer in trainers.values():
        trainer.fit(args.warmup)  # traces and warms up
    return race(name, trainers, args)


rates: list[float] = []  # every matmul rate measured, in order

# The model of docs/results.md's all-Shakespeare command.
ALL_SHAKESPEARE = {"units": 384, "batch_size": 64, "dropout": 0.1, "embedding_dropout": 0.0}


def compare_precision(default: TrainParams, data: EncodedData, args: argparse.Namespace) -> None:
    """(d): float32 against mixed_bfloat16 at the all-Shakespeare model, interleaved."""
    params = default.model_copy(update={**ALL_SHAKESPEARE, "deterministic": False})
    trainers = {}
    for policy in ("float32", "mixed_bfloat16"):  # a model computes in the policy it was built in
        keras.mixed_precision.set_global_policy(policy)
        trainers[policy] = Trainer(params, data, plain=policy != "float32")
        trainers[policy].fit(args.warmup)
    keras.mixed_precision.set_global_policy("float32")
    print("(d) the all-Shakespeare model by precision")
    race("2 x LSTM(384), batch 64", trainers, args)


def report_tutorial(default: TrainParams, data: EncodedData, args: argparse.Namespace) -> None:
    print("(a) the tutorial's formulation against the default, as pipeline.train fits them")
    results = {}
    for name, params in (("tutorial", tutorial_params(default)), ("default", default)):
        trainer = Trainer(params, data, plain=False)
        trainer.fit(args.warmup)
        steps = args.steps * 5 if name == "tutorial" else args.steps
        best = min(seconds(lambda: trainer.fit(steps)) for _ in range(args.rounds))  # noqa: B023
        results[name] = trainer.chars_per_second(best, steps)
        print(f"  {name:9s} {results[name]:10.0f} chars/s")
    print(f"  default / tutorial chars/s: {results['default'] / results['tutorial']:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round and model")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--only-default", action="store_true", help="(b) at params.yaml only")
    parser.add_argument("--tutorial", action="store_true", help="also (a)")
    parser.add_argument("--threshold", type=float, default=0.0, help="(c) to these bits/char")
    parser.add_argument("--default-budget-s", type=float, default=900)
    parser.add_argument("--tutorial-budget-s", type=float, default=600)
    parser.add_argument("--eval-every", type=int, default=300, help="tutorial steps per point")
    parser.add_argument("--precision", action="store_true", help="only (d)")
    args = parser.parse_args()

    default = load_params().train
    data = load_encoded()
    deterministic = default.deterministic and not args.precision  # (d) runs without it
    if deterministic:
        tf.config.experimental.enable_op_determinism()  # as pipeline.train runs it
    print(
        f"{cpu_model()}; TensorFlow {tf.__version__}, "
        f"{len(tf.config.list_physical_devices('GPU'))} GPUs; {len(data.train_ids)} training "
        f"characters, vocabulary {len(data.vocabulary)}; op determinism {deterministic}"
    )
    if args.precision:
        compare_precision(default, data, args)
        return
    print(f"(b) plain fit against the fused twin: {args.rounds} rounds of {args.steps} steps")
    configurations = [("params.yaml", default)]
    if not args.only_default:
        configurations += [
            ("batch 64", default.model_copy(update={"batch_size": 64})),
            ("2 x LSTM(256)", default.model_copy(update={"units": 256, "layers": 2})),
        ]
    ratios = {name: compare(name, params, data, args) for name, params in configurations}
    print("  speed-ups: " + ", ".join(f"{name} {ratio:.2f}x" for name, ratio in ratios.items()))
    if args.tutorial:
        report_tutorial(default, data, args)
    if args.threshold:
        budgets = (args.default_budget_s, args.tutorial_budget_s)
        tutorial = tutorial_params(default)
        report_time_to_threshold(default, tutorial, data, args.threshold, budgets, args.eval_every)


if __name__ == "__main__":
    main()
