"""Nested metrics as flat names: `{"test": {"bpc": x}}` is `test.bpc`, as MLflow shows the paths of
`reports/metrics.json`."""

from __future__ import annotations

from typing import Any


def flatten_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """`{"test": {"bpc": x}}` -> `{"test.bpc": x}`: the names MLflow shows are the paths of
    `metrics.json` (and of `baseline.json` under `ngram.`), so both read the same."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= flatten_metrics(value, f"{name}.")
        elif isinstance(value, int | float):
            flat[name] = float(value)
    return flat
