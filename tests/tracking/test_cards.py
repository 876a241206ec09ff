"""pipeline/tracking/cards.py: what a model card says, and a card published on a real registered
version with its metric tags."""

import mlflow
from mlflow import MlflowClient

from pipeline.core.config import TrainParams
from pipeline.core.params import parse_params
from pipeline.tracking import cards
from pipeline.tracking.runs import flatten_params
from tests.support.generator import NAME, generator_store
from tests.support.params import committed, committed_raw

METRICS = {"test.bpc": 2.2373, "val.bpc": 2.338, "ngram_test_bpc": 2.2474, "margin_bpc": 0.0101}
TAGS = {
    "git_commit": "5ed8a06" + "0" * 33,
    "git_dirty": "false",
    "data_hash": "ab" * 32,
    "champion_decision": "promoted",
}


def test_changed_params_lists_only_what_differs_from_the_committed_file():
    params = parse_params(committed_raw())
    flat = flatten_params(params)
    assert cards.changed_params(params, flat) == "none (the committed params.yaml)"
    wider = parse_params(
        committed_raw() | {"train": committed(TrainParams, units=256, epochs=4).model_dump()}
    )
    assert cards.changed_params(wider, flat) == "train.units=256, train.epochs=4"
    assert cards.changed_params(params, None).startswith("unknown")


def test_the_card_names_data_code_params_numbers_decision_and_a_sample():
    card = cards.model_card(TAGS, "train.units=256", METRICS, ("fair is\nfoul", "and foul " * 40))
    assert card.startswith("**Test bits per character** (continuous): 2.2373, beside the ")
    assert "n-gram's 2.2474 (margin +0.0101; validation 2.3380)" in card
    assert f"`data/encoded` sha256 `{'ab' * 32}`" in card
    assert "commit `5ed8a0600000`\n" in card  # 12 characters, no "uncommitted" note
    assert "Params changed from the committed params.yaml: train.units=256" in card
    assert "Champion decision: promoted" in card
    sample = card.splitlines()[-1]
    assert sample.startswith("- Sample: *fair is foul* -> and foul and foul")
    assert len(sample) <= len("- Sample: *fair is foul* -> ") + cards.SAMPLE_CHARS


def test_a_published_card_describes_and_tags_the_runs_versions(tmp_path):
    with generator_store(tmp_path) as uri:
        client = MlflowClient(uri)
        version = client.get_model_version(NAME, "1")
        client.log_batch(
            version.run_id, tags=[mlflow.entities.RunTag(k, v) for k, v in TAGS.items()]
        )
        params = parse_params(committed_raw())
        with mlflow.start_run(run_id=version.run_id):
            cards.publish_card(params, METRICS, ("fair is", " foul"))
        described = client.get_model_version(NAME, "1")
    assert described.description.startswith("**Test bits per character** (continuous): 2.2373")
    assert described.tags["test.bpc"] == "2.2373" and described.tags["margin_bpc"] == "0.0101"
