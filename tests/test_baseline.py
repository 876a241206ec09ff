"""pipeline/baseline.py: the n-gram order chosen on validation, and the report's names."""

import math

import pytest

from pipeline.baseline import Scores, adapted_report, choose_order, report, score_order
from pipeline.core.config import EncodeParams
from pipeline.corpus.encoded import EncodedData
from pipeline.encode import encode_corpus
from pipeline.scoring.ngram import fit_kneser_ney
from tests.support.corpora import TEXT
from tests.support.params import committed

PARAMS = committed(EncodeParams, seq_len=20, stride=10, val_fraction=0.2, test_fraction=0.1)
# Extra text unlike the corpus (and holding none of its held-out lines).
EXTRA = "\n".join(f"the {word} sat on the mat by the door." for word in ("cat", "dog", "owl") * 60)


@pytest.fixture(scope="module")
def data() -> EncodedData:
    return EncodedData(*encode_corpus(TEXT, PARAMS))


def test_scores_are_bits_per_character(data):
    scores = score_order(data, 2, 20, "validation")
    for value in (scores.continuous, scores.windowed):
        assert math.isfinite(value)
        assert 0 < value < math.log2(len(data.vocabulary)) + 1  # near uniform at worst


def test_the_order_with_the_lowest_continuous_validation_score_is_chosen(data):
    best, scores = choose_order(data, max_order=4, window=20)
    assert sorted(scores) == [1, 2, 3, 4]
    assert scores[best].continuous == min(s.continuous for s in scores.values())
    # The corpus repeats a few lines: context must help over single-character frequencies.
    assert best > 1
    assert scores[best].continuous < scores[1].continuous


def test_report_names_splits_and_protocols_as_evaluate_reads_them():
    validation = {1: Scores(4.0, 4.1), 2: Scores(3.0, 3.2)}
    written = report(2, validation, Scores(3.1, 3.3))
    assert written["order"] == 2
    assert written["validation"] == {"bits_per_char_continuous": 3.0, "bits_per_char_windowed": 3.2}
    assert written["test"] == {"bits_per_char_continuous": 3.1, "bits_per_char_windowed": 3.3}
    assert written["validation_by_order"] == {
        "1": {"continuous": 4.0, "windowed": 4.1},
        "2": {"continuous": 3.0, "windowed": 3.2},
    }


def test_with_extra_text_the_mixture_is_chosen_on_validation_and_scored_on_test():
    data = EncodedData(*encode_corpus(TEXT, PARAMS, extra=EXTRA))
    order, validation = choose_order(data, max_order=4, window=20)
    everything = fit_kneser_ney(data.train_ids, len(data.vocabulary), order)
    written = adapted_report(data, everything, max_order=4, window=20)
    assert written["own_order"] in range(1, 5) and 0 <= written["own_weight"] <= 1
    assert sorted(written["validation_by_own_order"]) == ["1", "2", "3", "4"]
    chosen = written["validation"]["bits_per_char_continuous"]
    assert chosen == min(row["continuous"] for row in written["validation_by_own_order"].values())
    # The corpus differs from the extra text: its own n-gram helps on its validation text.
    assert written["own_weight"] > 0
    assert chosen < validation[order].continuous
    for protocol in ("continuous", "windowed"):
        assert 0 < written["test"][f"bits_per_char_{protocol}"] < math.log2(len(data.vocabulary))
