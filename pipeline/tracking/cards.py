"""A model card on each registered version of a run: its description in the MLflow registry,
written by evaluate once the run's test numbers are known, with tags for the headline metrics.

The card says what the version was trained on (the encoded data's sha256, the commit), which
params differ from the committed params.yaml (the defaults: the schema has none of its own), its
test bits per character beside the n-gram's, the champion decision train made, and one short
sample."""

from __future__ import annotations

import subprocess

import mlflow
import yaml
from mlflow import MlflowClient

from pipeline.core.config import Params
from pipeline.core.errors import ConfigError
from pipeline.core.params import parse_params
from pipeline.tracking import registry
from pipeline.tracking.runs import flatten_params
from pipeline.tracking.store import store_errors, tracking_uri

SAMPLE_CHARS = 160  # of the card's sample continuation
METRIC_TAGS = ("test.bpc", "val.bpc", "ngram_test_bpc", "margin_bpc")


def committed_params() -> dict[str, str] | None:
    """The committed params.yaml (git HEAD) as flat MLflow params; None when there is none."""
    shown = subprocess.run(
        ["git", "show", "HEAD:params.yaml"], capture_output=True, text=True, check=False
    )
    if shown.returncode != 0:
        return None
    try:
        return flatten_params(parse_params(yaml.safe_load(shown.stdout)))
    except (yaml.YAMLError, ConfigError):
        return None


def changed_params(params: Params, committed: dict[str, str] | None) -> str:
    """`train.units=256, train.epochs=4`: the params that differ from the committed file."""
    if committed is None:
        return "unknown (no committed params.yaml to compare with)"
    flat = flatten_params(params)
    changed = [f"{key}={value}" for key, value in flat.items() if committed.get(key) != value]
    return ", ".join(changed) or "none (the committed params.yaml)"


def model_card(
    tags: dict[str, str], changed: str, metrics: dict[str, float], sample: tuple[str, str]
) -> str:
    """The card's text (Markdown, as the MLflow UI shows a description)."""
    commit = tags.get("git_commit", "unknown")[:12]
    dirty = " with uncommitted changes" if tags.get("git_dirty") == "true" else ""
    prompt, text = (" ".join(part.split()) for part in sample)
    return "\n".join(
        [
            f"**Test bits per character** (continuous): {metrics['test.bpc']:.4f}, beside the "
            f"Kneser-Ney n-gram's {metrics['ngram_test_bpc']:.4f} (margin "
            f"{metrics['margin_bpc']:+.4f}; validation {metrics['val.bpc']:.4f}).",
            "",
            f"- Data: `data/encoded` sha256 `{tags.get('data_hash', 'unknown')}`",
            f"- Code: commit `{commit}`{dirty}",
            f"- Params changed from the committed params.yaml: {changed}",
            f"- Champion decision: {tags.get('champion_decision', 'none')}",
            f"- Sample: *{prompt}* -> {text[:SAMPLE_CHARS]}",
        ]
    )


def publish_card(params: Params, metrics: dict[str, float], sample: tuple[str, str]) -> None:
    """Describe and tag every registered version of the active run (none for a duplicate)."""
    run = mlflow.active_run()
    if run is None or "test.bpc" not in metrics:  # the tutorial model has no continuous figure
        return
    client = MlflowClient()
    with store_errors(tracking_uri()):
        tags = client.get_run(run.info.run_id).data.tags
        versions = client.search_model_versions(f"run_id = '{run.info.run_id}'")
        card = model_card(tags, changed_params(params, committed_params()), metrics, sample)
        for version in versions:
            client.update_model_version(version.name, version.version, description=card)
    registry.tag_versions(
        {v.name: v.version for v in versions}, {k: f"{metrics[k]:.4f}" for k in METRIC_TAGS}
    )
