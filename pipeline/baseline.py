"""Stage 5, baseline: the classical peer every LSTM run is measured against.

Reads `data/encoded/` and the `baseline` and `encode` params; writes `reports/baseline.json` (a
DVC metric): an interpolated modified Kneser-Ney character n-gram (`pipeline/scoring/ngram.py`)
fitted on
the training text, each order 1..`baseline.max_order` scored on the validation text, the best
order (lowest continuous validation bits per character) then scored once on the test text under
both protocols of the LSTM (see `pipeline/scoring/likelihood.py`):

- `continuous`: the history never cut, warmed up on the text just before;
- `windowed`: the history reset every `encode.seq_len` characters.

Run with `python -m pipeline.baseline`. Fit and score take seconds on Macbeth; memory grows with
the number of distinct n-grams (about 20 bytes each per order), not with the vocabulary.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pipeline.core import files
from pipeline.core.cli import run_stage
from pipeline.core.params import load_params
from pipeline.core.paths import BASELINE_PATH
from pipeline.corpus.encoded import EncodedData, heldout_split, load_encoded
from pipeline.scoring.ngram import bits_per_char, fit_kneser_ney, max_exact_order

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scores:
    continuous: float
    windowed: float


def score_order(data: EncodedData, order: int, window: int, split: str) -> Scores:
    """Bits per character of the order-`order` model on `split` ("validation" or "test")."""
    model = fit_kneser_ney(data.train_ids, len(data.vocabulary), order)
    text, warmup = heldout_split(data, split)
    return Scores(
        continuous=bits_per_char(model, text, 0, warmup),
        windowed=bits_per_char(model, text, window),
    )


def choose_order(data: EncodedData, max_order: int, window: int) -> tuple[int, dict[int, Scores]]:
    """Every order's validation scores, and the order with the lowest continuous one."""
    highest = min(max_order, max_exact_order(len(data.vocabulary)))
    orders = range(1, highest + 1)
    scores = {order: score_order(data, order, window, "validation") for order in orders}
    best = min(scores, key=lambda order: scores[order].continuous)
    return best, scores


def report(order: int, validation: dict[int, Scores], test: Scores) -> dict[str, object]:
    """`reports/baseline.json`: named by split and protocol, as evaluate and MLflow name them."""
    return {
        "model": "interpolated modified Kneser-Ney character n-gram",
        "order": order,
        "validation": {
            "bits_per_char_continuous": validation[order].continuous,
            "bits_per_char_windowed": validation[order].windowed,
        },
        "test": {
            "bits_per_char_continuous": test.continuous,
            "bits_per_char_windowed": test.windowed,
        },
        "validation_by_order": {
            str(n): {"continuous": s.continuous, "windowed": s.windowed}
            for n, s in validation.items()
        },
    }


def main() -> None:
    params = load_params()
    data = load_encoded()
    window = params.encode.seq_len
    order, validation = choose_order(data, params.baseline.max_order, window)
    for n, scores in validation.items():
        log.info(
            "order %2d: validation %.4f bits/char continuous, %.4f windowed",
            n,
            scores.continuous,
            scores.windowed,
        )
    test = score_order(data, order, window, "test")
    log.info(
        "order %d chosen on validation; test %.4f bits/char continuous", order, test.continuous
    )
    files.write_json(BASELINE_PATH, report(order, validation, test))


if __name__ == "__main__":
    run_stage("baseline", main)
