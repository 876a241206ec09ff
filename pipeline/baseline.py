"""Stage 5, baseline: the classical peer every LSTM run is measured against.

Reads `data/encoded/` and the `baseline` and `encode` params; writes `reports/baseline.json` (a
DVC metric): an interpolated modified Kneser-Ney character n-gram (`pipeline/scoring/ngram.py`)
fitted on
the training text, each order 1..`baseline.max_order` scored on the validation text, the best
order (lowest continuous validation bits per character) then scored once on the test text under
both protocols of the LSTM (see `pipeline/scoring/likelihood.py`):

- `continuous`: the history never cut, warmed up on the text just before;
- `windowed`: the history reset every `encode.seq_len` characters.

With extra training text and `baseline.mixture`, the report also holds the corpus-adapted mixture
(`pipeline/scoring/mixture.py`): the chosen n-gram mixed with one fitted on the corpus's own
training part, its order and weight chosen on validation, the peer of the LSTM's fine-tuning.

Run with `python -m pipeline.baseline`. Fit and score take seconds on Macbeth; memory grows with
the number of distinct n-grams (about 20 bytes each per order), not with the vocabulary.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pipeline.core import files
from pipeline.core.cli import run_stage
from pipeline.core.params import load_params
from pipeline.core.paths import BASELINE_PATH
from pipeline.corpus.encoded import EncodedData, heldout_split, load_encoded
from pipeline.scoring.mixture import Mixture, choose_mixture, mixture_bits
from pipeline.scoring.ngram import KneserNey, bits_per_char, fit_kneser_ney, max_exact_order

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scores:
    continuous: float
    windowed: float


def score_order(data: EncodedData, order: int, window: int, split: str) -> Scores:
    """Bits per character of the order-`order` model on `split` ("validation" or "test")."""
    return score_model(
        fit_kneser_ney(data.train_ids, len(data.vocabulary), order), data, window, split
    )


def score_model(model: KneserNey, data: EncodedData, window: int, split: str) -> Scores:
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


def report(order: int, validation: dict[int, Scores], test: Scores) -> dict[str, Any]:
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


def score_mixture(mixture: Mixture, data: EncodedData, window: int, split: str) -> Scores:
    text, warmup = heldout_split(data, split)
    return Scores(
        continuous=mixture_bits(mixture, text, 0, warmup),
        windowed=mixture_bits(mixture, text, window, warmup),
    )


def adapted_report(
    data: EncodedData, everything: KneserNey, max_order: int, window: int
) -> dict[str, Any]:
    """`reports/baseline.json`'s `mixture`: `everything`, the chosen n-gram of all the training
    text, mixed with one of the corpus's own training part, chosen and scored as the n-gram is."""
    own_ids = data.train_ids[data.spec.extra_chars :]
    text, warmup = heldout_split(data, "validation")
    mixture, by_order = choose_mixture(everything, own_ids, max_order, text, warmup)
    validation = score_mixture(mixture, data, window, "validation")
    test = score_mixture(mixture, data, window, "test")
    log.info(
        "mixture with an order-%d n-gram of the corpus's own %d training characters, weight "
        "%.2f (chosen on validation): validation %.4f, test %.4f bits/char continuous",
        mixture.own.order,
        len(own_ids),
        mixture.weight,
        validation.continuous,
        test.continuous,
    )
    return {
        "model": "the n-gram mixed with a Kneser-Ney n-gram of the corpus's own training part",
        "own_order": mixture.own.order,
        "own_weight": mixture.weight,
        "validation": {
            "bits_per_char_continuous": validation.continuous,
            "bits_per_char_windowed": validation.windowed,
        },
        "test": {
            "bits_per_char_continuous": test.continuous,
            "bits_per_char_windowed": test.windowed,
        },
        "validation_by_own_order": {
            str(n): {"weight": weight, "continuous": bits} for n, (weight, bits) in by_order.items()
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
    chosen = fit_kneser_ney(data.train_ids, len(data.vocabulary), order)  # fitted once, used twice
    test = score_model(chosen, data, window, "test")
    log.info(
        "order %d chosen on validation; test %.4f bits/char continuous", order, test.continuous
    )
    written = report(order, validation, test)
    if params.baseline.mixture and data.spec.extra_chars:
        written["mixture"] = adapted_report(data, chosen, params.baseline.max_order, window)
    files.write_json(BASELINE_PATH, written)


if __name__ == "__main__":
    run_stage("baseline", main)
