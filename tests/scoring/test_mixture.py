"""The corpus-adapted mixture: the all-text n-gram at weight 0, its order and weight chosen on
the text it is given, and a gain where the corpus differs from the extra text."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.core.errors import PipelineError
from pipeline.scoring.mixture import WEIGHTS, Mixture, choose_mixture, mixture_bits
from pipeline.scoring.ngram import bits_per_char, fit_kneser_ney

VOCABULARY = sorted(set("abcdefghijklmnopqrstuvwxyz ,.\n"))
EXTRA = "the cat sat on the mat, and the dog lay by the door.\n" * 40
CORPUS = "fair is foul and foul is fair, hover through the fog and filthy air.\n" * 6


def ids(text: str) -> np.ndarray:
    return np.array([VOCABULARY.index(c) for c in text], dtype=np.uint8)


@pytest.fixture(scope="module")
def everything():
    return fit_kneser_ney(ids(EXTRA + CORPUS), len(VOCABULARY), 4)


def test_weight_zero_is_the_all_text_model_under_both_protocols(everything):
    own = fit_kneser_ney(ids(CORPUS), len(VOCABULARY), 3)
    text, warmup = ids(CORPUS[:70]), ids(CORPUS[-30:])
    mixture = Mixture(everything, own, 0.0)
    for window in (0, 20):
        expected = bits_per_char(everything, text, window, warmup)
        assert math.isclose(mixture_bits(mixture, text, window, warmup), expected, rel_tol=1e-12)
    alone = Mixture(everything, own, 1.0)
    assert math.isclose(mixture_bits(alone, text, 0, warmup), bits_per_char(own, text, 0, warmup))


def test_the_order_and_weight_with_the_lowest_bits_on_the_given_text_are_chosen(everything):
    own_ids = ids(CORPUS)
    text, warmup = ids(CORPUS[:140]), ids(EXTRA[-30:])
    chosen, by_order = choose_mixture(everything, own_ids, 5, text, warmup)
    assert sorted(by_order) == [1, 2, 3, 4, 5]
    assert chosen.weight in WEIGHTS
    best = min(bits for _, bits in by_order.values())
    assert math.isclose(mixture_bits(chosen, text, 0, warmup), best)
    assert by_order[chosen.own.order][1] == best
    # Every other weight of the chosen order scores no better on that text.
    for weight in WEIGHTS:
        other = Mixture(everything, chosen.own, weight)
        assert mixture_bits(other, text, 0, warmup) >= best - 1e-12


def test_text_like_the_corpus_gains_from_its_own_model_and_never_loses(everything):
    text, warmup = ids(CORPUS[:140]), ids(EXTRA[-30:])
    chosen, _ = choose_mixture(everything, ids(CORPUS), 5, text, warmup)
    assert chosen.weight > 0  # the corpus is a sixth of the text: its own model knows it better
    assert mixture_bits(chosen, text, 0, warmup) < bits_per_char(everything, text, 0, warmup)
    # Text like the extra text: the own model has nothing to add, so the weight stays small.
    unlike, _ = choose_mixture(everything, ids(CORPUS), 5, ids(EXTRA[:140]), warmup)
    assert unlike.weight < chosen.weight
    assert mixture_bits(unlike, ids(EXTRA[:140]), 0, warmup) <= bits_per_char(
        everything, ids(EXTRA[:140]), 0, warmup
    )


def test_orders_are_capped_by_the_own_text_and_too_little_of_it_is_refused(everything):
    _, by_order = choose_mixture(everything, ids("fair is"), 10, ids("fair"), ids("is "))
    assert max(by_order) == len("fair is") - 1
    with pytest.raises(PipelineError, match="1 own training characters are too few"):
        choose_mixture(everything, ids("f"), 4, ids("fair"), ids("is "))
