"""Compare the latest training runs: one row per MLflow run, key params and metrics side by side.

Reads the runs of one MLflow experiment (default: `mlflow.experiment` in params.yaml) from the
store the train stage logs to (`MLFLOW_TRACKING_URI`, else `mlflow.db` in the current folder) and
prints them newest first. Writes nothing.

    python -m pipeline.compare                          # last 10 runs of params.yaml's experiment
    python -m pipeline.compare --experiment tiny --last 3
    python -m pipeline.compare --sweep defaults         # one sweep's runs, best first
    python -m pipeline.compare --wide                   # every column (wider than 120)
    make compare COMPARE_ARGS="--last 5"
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

import pandas as pd
from mlflow.entities import Run

from pipeline.core.cli import run_stage
from pipeline.core.errors import PipelineError
from pipeline.core.params import load_params
from pipeline.core.urls import redact_url
from pipeline.tracking.store import open_experiment, store_reads, tracking_uri

# What a sweep is ranked by: validation, never test (test is for the chosen run only).
RANK_METRIC = "validation.bits_per_char"
# The narrow table (it fits 120 columns): short header -> logged name.
PARAMS = {"units": "train.units", "layers": "train.layers", "batch": "train.batch_size"}
METRICS = {
    "val_bpc": RANK_METRIC,  # train's best epoch
    "test_bpc": "test.bpc",  # evaluate's, continuous
    "ngram": "ngram_test_bpc",
    "margin": "margin_bpc",
    "minutes": "train_minutes",
}
# `--wide` adds these params, and a sample metric of the evaluate stage per temperature it logged
# (sampling.greedy.distinct_2, sampling.t0.80.distinct_2, ...).
WIDE_PARAMS = ("train.architecture", "train.epochs", "train.learning_rate", "encode.seq_len")
SAMPLE_METRIC = "distinct_2"
MAX_NAME = 24  # characters of a run name shown; MLflow's own names are shorter


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.compare", description="Show the latest MLflow runs as one table."
    )
    parser.add_argument(
        "--experiment", help="MLflow experiment name (default: mlflow.experiment in params.yaml)"
    )
    parser.add_argument(
        "--last", type=positive_int, default=10, metavar="N", help="newest N runs (default 10)"
    )
    parser.add_argument(
        "--sweep", metavar="NAME", help=f"only the runs of one sweep, ranked by {RANK_METRIC}"
    )
    parser.add_argument(
        "--wide", action="store_true", help="every column: run ids, more params, sample metrics"
    )
    return parser.parse_args(argv)


def fetch_runs(experiment: str, last: int, uri: str, sweep: str | None = None) -> pd.DataFrame:
    """The newest `last` runs of `experiment` (of one `sweep` only, if given), newest first, as
    a DataFrame (see runs_to_frame)."""
    if sweep is not None and not re.fullmatch(r"[A-Za-z0-9_-]+", sweep):
        raise PipelineError(f"sweep name {sweep!r}: use letters, digits, '-' and '_'")
    with store_reads(uri):
        client, experiment_id = open_experiment(experiment, uri)
        # MlflowClient rather than mlflow.search_runs: that one reads the global tracking URI,
        # and setting it also exports MLFLOW_TRACKING_URI to the whole process.
        runs = client.search_runs(
            [experiment_id],
            filter_string=f"tags.sweep = '{sweep}'" if sweep else "",
            max_results=last,
            order_by=["attributes.start_time DESC"],
        )
    return runs_to_frame(runs)


def runs_to_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """The columns `mlflow.search_runs(output_format="pandas")` gives: run_id, start_time,
    status, `params.*`, `metrics.*` and `tags.*`, one row per run."""
    rows = [
        {
            "run_id": run.info.run_id,
            "run_name": run.info.run_name or "",
            "start_time": pd.to_datetime(run.info.start_time, unit="ms", utc=True),
            "status": run.info.status,
            **{f"params.{name}": value for name, value in run.data.params.items()},
            **{f"metrics.{name}": value for name, value in run.data.metrics.items()},
            **{f"tags.{name}": value for name, value in run.data.tags.items()},
        }
        for run in runs
    ]
    return pd.DataFrame(rows)


def column_or_missing(runs: pd.DataFrame, name: str) -> pd.Series:
    """`runs[name]`, or a column of missing values when no run logged `name`."""
    if name in runs.columns:
        return runs[name]
    # NaN, not None: DataFrame.to_string prints NaN as `na_rep` but None as "None".
    return pd.Series(float("nan"), index=runs.index, dtype=object)


def select_columns(runs: pd.DataFrame, wide: bool = False) -> pd.DataFrame:
    """One row per run: its name, start, status, commit, key params and metrics (`wide`: the
    run id, more params and the sample metric per temperature too)."""
    commit = column_or_missing(runs, "tags.git_commit").fillna("").str[:7]
    dirty = column_or_missing(runs, "tags.git_dirty").eq("true")
    name = column_or_missing(runs, "run_name").fillna("").str[:MAX_NAME]
    table = pd.DataFrame({"run": name})
    if wide:
        table["run_id"] = runs["run_id"]
    table["started"] = runs["start_time"].dt.strftime("%m-%d %H:%M")
    table["status"] = runs["status"]
    table["commit"] = commit.where(~dirty, commit + "+")
    params = PARAMS | ({name: name for name in WIDE_PARAMS} if wide else {})
    for header, logged in params.items():
        table[header] = column_or_missing(runs, f"params.{logged}")
    samples = sorted(
        column.removeprefix("metrics.")
        for column in runs.columns
        if column.startswith("metrics.sampling.") and column.endswith(f".{SAMPLE_METRIC}")
    )
    metrics = METRICS | ({name: name for name in samples} if wide else {})
    for header, logged in metrics.items():
        table[header] = column_or_missing(runs, f"metrics.{logged}")
    return table


def format_runs(runs: pd.DataFrame, wide: bool = False) -> str:
    """A plain-text table of `select_columns(runs)`; `-` marks a value a run did not log, `+` a
    commit with uncommitted changes."""
    if runs.empty:
        return "(no runs yet)"
    table = select_columns(runs, wide)
    return table.to_string(index=False, na_rep="-", float_format=lambda value: f"{value:.4f}")


def main() -> None:
    args = parse_args()
    experiment = args.experiment or load_params().mlflow.experiment
    uri = tracking_uri()
    runs = fetch_runs(experiment, args.last, uri, args.sweep)
    if args.sweep and not runs.empty:
        runs = rank_runs(runs)
        order = f"sweep '{args.sweep}', best {RANK_METRIC} first"
    else:
        order = "newest first"
    sys.stdout.write(f"experiment '{experiment}' in {redact_url(uri)}, {order}:\n")
    sys.stdout.write(format_runs(runs, args.wide) + "\n")


def rank_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs sorted by `RANK_METRIC`, lowest (best) first; runs without it last."""
    key = column_or_missing(runs, f"metrics.{RANK_METRIC}").astype(float)
    return runs.assign(_rank=key).sort_values("_rank", na_position="last").drop(columns="_rank")


if __name__ == "__main__":
    run_stage("compare", main)
