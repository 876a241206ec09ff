"""The model registry's champion: a new version takes the alias `champion` when it beats the current
one on validation bits per character."""

from __future__ import annotations

import logging
import math
import time

import mlflow
from mlflow import MlflowClient

from pipeline.tracking.store import store_creation_lock, store_errors, tracking_uri

log = logging.getLogger(__name__)


PROMOTION_ATTEMPTS = 5  # set-and-read-back rounds against a concurrent promotion
PROMOTION_SETTLE_S = 1.0
CHAMPION = "champion"  # the registry alias that docs/serving.md serves and loads
MODEL_TAG = "model_sha256"  # on each registered version: the bytes it was logged from
# What promotion compares (lower is better): train's best validation loss in bits per character.
SELECTION_METRIC = "validation.bits_per_char"


def beats_champion(candidate: float, champion: float | None) -> bool:
    """A new version becomes champion when there is none yet, or when it is strictly better
    (lower). A champion whose run lacks the metric (older runs) is treated as beaten."""
    if not math.isfinite(candidate):
        return False
    return champion is None or math.isnan(champion) or candidate < champion


def champion_value(client: MlflowClient, model_name: str) -> tuple[str | None, float | None]:
    """(version, SELECTION_METRIC of its run) of the model's current champion; (None, None)
    when no version has the alias yet."""
    try:
        version = client.get_model_version_by_alias(model_name, CHAMPION)
    except mlflow.exceptions.MlflowException as error:
        if error.error_code in {"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"}:
            return None, None
        raise
    metrics = client.get_run(version.run_id).data.metrics if version.run_id else {}
    return str(version.version), metrics.get(SELECTION_METRIC, math.nan)


def promote_if_better(versions: dict[str, str], value: float) -> dict[str, str]:
    """Give the new `versions` ({registered model: version}, all from this run) the alias
    `champion` when `value` beats the current champion of the first model; record the decision
    as tags on the active run and return them.

    A SQLite store is serialised by its lock. A tracking server has no lock to take, so two
    experiments finishing at once may both see the old champion and both set the alias; each
    therefore reads the alias back after setting it and takes it again while it still holds the
    better value, so the best of them ends up champion whatever the interleaving."""
    client = MlflowClient()
    first = next(iter(versions))
    with store_errors(tracking_uri()), store_creation_lock(tracking_uri()):
        previous_version, previous = champion_value(client, first)
        promoted = beats_champion(value, previous)
        current_version, current = previous_version, previous
        for _ in range(PROMOTION_ATTEMPTS if promoted else 0):
            if current_version == versions[first] or not beats_champion(value, current):
                break  # ours already, or a better model took it meanwhile
            for name, version in versions.items():
                client.set_registered_model_alias(name, CHAMPION, version)
            time.sleep(PROMOTION_SETTLE_S)  # let a concurrent writer's alias land first
            current_version, current = champion_value(client, first)
    tags = {
        "champion_decision": "promoted" if promoted else "kept previous champion",
        "champion_previous_version": previous_version or "none",
        "champion_previous_value": "none" if previous is None else f"{previous:.6f}",
        "champion_metric": SELECTION_METRIC,
    }
    mlflow.set_tags(tags)
    log.info(
        "%s %.4f vs champion %s: %s",
        SELECTION_METRIC,
        value,
        tags["champion_previous_value"],
        tags["champion_decision"],
    )
    return tags


def registered_version(name: str, digest: str) -> str | None:
    """The version of registered model `name` logged from a model file of sha256 `digest`, if
    any: an identical re-run (same inputs, same machine, same bytes) is not registered again."""
    with store_errors(tracking_uri()):
        versions = MlflowClient().search_model_versions(f"name = '{name}'")
    found = [v.version for v in versions if v.tags.get(MODEL_TAG) == digest]
    return str(min(found, key=int)) if found else None


def tag_versions(versions: dict[str, str], tags: dict[str, str]) -> None:
    """Set `tags` on each registered version ({registered model: version})."""
    client = MlflowClient()
    with store_errors(tracking_uri()):
        for name, version in versions.items():
            for key, value in tags.items():
                client.set_model_version_tag(name, version, key, value)


def record_duplicate(version: str) -> None:
    """The run's champion decision when its model is already registered as `version`."""
    mlflow.set_tags(
        {
            "champion_decision": f"identical to version {version}: not registered again",
            "duplicate_of_version": version,
        }
    )
    log.info("the model is byte for byte version %s: not registered again", version)
