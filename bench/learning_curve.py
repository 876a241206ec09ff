"""A run's learning curve: validation bits per character against training minutes, beside the
n-gram baseline's, read back from MLflow.

The train stage logs `val_loss` (mean cross-entropy in nats over the validation windows, a fresh
state per window: the windowed protocol) once per epoch; MLflow keeps each value's wall-clock
time. This prints one Markdown row per epoch: minutes since the run started, the windowed
validation bits per character, and the run's final continuous and windowed scores and its peer's.

    python bench/learning_curve.py all-shakespeare            # a run by name, newest first
    python bench/learning_curve.py all-shakespeare --experiment charlstm-macbeth

Reads the store the pipeline logs to (`MLFLOW_TRACKING_URI`, else `mlflow.db` here).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/...` from the root

from pipeline.core.cli import run_stage  # noqa: E402
from pipeline.core.errors import PipelineError  # noqa: E402
from pipeline.core.params import load_params
from pipeline.tracking.store import open_experiment, tracking_uri

FINAL_METRICS = (  # as evaluate logs them: metrics.json's paths, baseline.json's under `ngram.`
    "val.bpc_windowed",
    "val.bpc",
    "ngram.validation.bits_per_char_windowed",
    "ngram.validation.bits_per_char_continuous",
    "test.bpc",
    "ngram.test.bits_per_char_continuous",
    "train_minutes",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_name", help="the MLflow run's name (e.g. the DVC experiment's)")
    parser.add_argument("--experiment", help="default: mlflow.experiment in params.yaml")
    args = parser.parse_args()
    if "'" in args.run_name:
        raise PipelineError(f"run name {args.run_name!r}: no quotes")
    client, experiment_id = open_experiment(
        args.experiment or load_params().mlflow.experiment, tracking_uri()
    )
    runs = client.search_runs(
        [experiment_id],
        f"attributes.run_name = '{args.run_name}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise PipelineError(f"no run named {args.run_name!r} in this experiment")
    run = runs[0]
    history = sorted(client.get_metric_history(run.info.run_id, "val_loss"), key=lambda m: m.step)
    print(f"run {run.info.run_name} ({run.info.run_id}), validation text, windowed protocol\n")
    print("| epoch | training minutes | validation bits/char |")
    print("|---|---|---|")
    for point in history:
        minutes = (point.timestamp - run.info.start_time) / 60_000
        print(f"| {point.step} | {minutes:.1f} | {point.value / math.log(2):.3f} |")
    print()
    for name in FINAL_METRICS:
        value = run.data.metrics.get(name)
        print(f"{name}: {'-' if value is None else f'{value:.4f}'}")


if __name__ == "__main__":
    run_stage("learning_curve", main)
