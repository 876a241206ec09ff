"""The figures logged to each MLflow run: sampling metrics by temperature, the training curve."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed; must precede pyplot
from matplotlib import pyplot  # noqa: E402


def plot_sampling(rows: dict[float, dict[str, float]]) -> pyplot.Figure:
    """Four of the sampling metrics (see `scoring/text_metrics.py`) against the temperature."""
    figure, axis = pyplot.subplots(figsize=(7, 4))
    temperatures = sorted(rows)
    for name in ("distinct_2", "known_word_share", "copied_8gram_share", "repeated_4gram_share"):
        axis.plot(temperatures, [rows[t][name] for t in temperatures], marker="o", label=name)
    axis.set_xlabel("temperature (0 = greedy)")
    axis.set_ylabel("share (0 to 1)")
    axis.legend()
    return figure


def plot_history(history_csv: Path) -> pyplot.Figure:
    """Training and validation loss per epoch, from train's `reports/train_history.csv`."""
    with history_csv.open(encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    figure, axis = pyplot.subplots(figsize=(7, 4))
    for key in ("loss", "val_loss"):
        axis.plot([int(r["epoch"]) for r in rows], [float(r[key]) for r in rows], label=key)
    axis.set_xlabel("epoch")
    axis.set_ylabel("cross-entropy (nats per character)")
    axis.legend()
    return figure
