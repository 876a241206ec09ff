"""The corpus-adapted n-gram: the n-gram's counterpart of the LSTM's fine-tuning on the corpus.

With extra training text (`download.extra_members`) the baseline's n-gram is fitted on all of it,
the corpus's own training part last. The LSTM then fine-tunes on that part alone
(`train.finetune_epochs`); its fair peer adapts too: a second Kneser-Ney n-gram fitted on the
corpus's own training part, mixed linearly with the all-text one,

    P(c | h) = (1 - w) * P_all(c | h) + w * P_own(c | h),

the own model's order (1..max_order) and the weight `w` (0, 0.05, ..., 1) chosen together on the
validation text (continuous protocol), then scored once on test under both protocols. `w = 0` is
the all-text n-gram itself, so the mixture is never worse than it on validation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.core.errors import PipelineError
from pipeline.scoring.ngram import (
    KneserNey,
    fit_kneser_ney,
    max_exact_order,
    mean_bits,
    text_probabilities,
)

WEIGHTS = tuple(step / 20 for step in range(21))  # the own model's share, 0 to 1 in 0.05 steps


@dataclass(frozen=True)
class Mixture:
    everything: KneserNey  # fitted on all the training text
    own: KneserNey  # fitted on the corpus's own training part
    weight: float  # the own model's share


def mixture_bits(mixture: Mixture, ids: np.ndarray, window: int, prefix: np.ndarray) -> float:
    """Bits per character of the mixture on `ids` (`window == 0`: continuous after `prefix`)."""
    everything = text_probabilities(mixture.everything, ids, window, prefix)
    own = text_probabilities(mixture.own, ids, window, prefix)
    return mean_bits((1 - mixture.weight) * everything + mixture.weight * own)


def choose_mixture(
    everything: KneserNey, own_ids: np.ndarray, max_order: int, text: np.ndarray, warmup: np.ndarray
) -> tuple[Mixture, dict[int, tuple[float, float]]]:
    """The own order and weight with the lowest continuous bits per character on `text` (the
    validation text, after `warmup`), and for each order its best `(weight, bits)`."""
    vocab_size = everything.vocab_size
    base = text_probabilities(everything, text, 0, warmup)
    highest = min(max_order, max_exact_order(vocab_size), len(own_ids) - 1)
    best: Mixture | None = None
    best_bits = float("inf")
    by_order: dict[int, tuple[float, float]] = {}
    for order in range(1, highest + 1):
        own = fit_kneser_ney(own_ids, vocab_size, order)
        adapted = text_probabilities(own, text, 0, warmup)
        scores = {w: mean_bits((1 - w) * base + w * adapted) for w in WEIGHTS}
        weight = min(scores, key=lambda w: scores[w])  # the first of equals: the smallest w
        by_order[order] = (weight, scores[weight])
        if scores[weight] < best_bits:
            best, best_bits = Mixture(everything, own, weight), scores[weight]
    if best is None:
        raise PipelineError(f"{len(own_ids)} own training characters are too few for a mixture")
    return best, by_order
