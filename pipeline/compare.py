"""Compare the latest training runs: one row per MLflow run, key params and metrics side by side.

Reads the runs of one MLflow experiment (default: `mlflow.experiment` in params.yaml) from the
store the train stage logs to (`MLFLOW_TRACKING_URI`, else `mlflow.db` in the current folder) and
prints them newest first. Writes nothing.

    python -m pipeline.compare                          # last 10 runs of params.yaml's experiment
    python -m pipeline.compare --experiment tiny --last 3
    python -m pipeline.compare --sweep defaults         # one sweep's runs, best first
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
from pipeline.tracking.store import open_experiment, tracking_uri

PARAM_COLUMNS = (
    "train.architecture",
    "train.units",
    "train.layers",
    "train.epochs",
    "encode.seq_len",
)
# What a sweep is ranked by: validation, never test (test is for the chosen run only).
RANK_METRIC = "validation.bits_per_char"
METRIC_COLUMNS = (
    RANK_METRIC,
    "test.bits_per_char_continuous",
    "baseline.test.bits_per_char_continuous",
    "margin_bits_per_char",
    "train_minutes",
)
# The evaluate stage logs sample metrics per temperature (sampling.greedy.distinct_2,
# sampling.t0.80.distinct_2, ...): show this one for every temperature a run has.
SAMPLE_METRIC = "distinct_2"


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
    return parser.parse_args(argv)


def fetch_runs(experiment: str, last: int, uri: str, sweep: str | None = None) -> pd.DataFrame:
    """The newest `last` runs of `experiment` (of one `sweep` only, if given), newest first, as
    a DataFrame (see runs_to_frame)."""
    client, experiment_id = open_experiment(experiment, uri)
    # MlflowClient rather than mlflow.search_runs: that one reads the global tracking URI, and
    # setting it also exports MLFLOW_TRACKING_URI to the whole process.
    if sweep is not None and not re.fullmatch(r"[A-Za-z0-9_-]+", sweep):
        raise PipelineError(f"sweep name {sweep!r}: use letters, digits, '-' and '_'")
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


def select_columns(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run: short id, start, status, commit, key params, key metrics."""
    commit = column_or_missing(runs, "tags.git_commit").fillna("").str[:8]
    dirty = column_or_missing(runs, "tags.git_dirty").eq("true")
    table = pd.DataFrame(
        {
            "run": runs["run_id"].str[:8],
            "started_utc": runs["start_time"].dt.strftime("%Y-%m-%d %H:%M"),
            "status": runs["status"],
            "commit": commit.where(~dirty, commit + "+dirty"),
        }
    )
    for name in PARAM_COLUMNS:
        table[name] = column_or_missing(runs, f"params.{name}")
    samples = sorted(
        column.removeprefix("metrics.")
        for column in runs.columns
        if column.startswith("metrics.sampling.") and column.endswith(f".{SAMPLE_METRIC}")
    )
    for name in (*METRIC_COLUMNS, *samples):
        table[name] = column_or_missing(runs, f"metrics.{name}")
    return table


def format_runs(runs: pd.DataFrame) -> str:
    """A plain-text table of `select_columns(runs)`; `-` marks a value a run did not log."""
    if runs.empty:
        return "(no runs yet)"
    table = select_columns(runs)
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
    sys.stdout.write(format_runs(runs) + "\n")


def rank_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs sorted by `RANK_METRIC`, lowest (best) first; runs without it last."""
    key = column_or_missing(runs, f"metrics.{RANK_METRIC}").astype(float)
    return runs.assign(_rank=key).sort_values("_rank", na_position="last").drop(columns="_rank")


if __name__ == "__main__":
    run_stage("compare", main)
