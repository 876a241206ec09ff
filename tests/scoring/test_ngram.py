"""The Kneser-Ney baseline: a proper distribution, and equal to a plain-Python reference."""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np
import pytest

from pipeline.core.errors import PipelineError
from pipeline.scoring.ngram import (
    bits_per_char,
    fit_kneser_ney,
    max_exact_order,
    modified_discounts,
    next_char_distribution,
    windowed_histories,
)

TEXT = "fair is foul, and foul is fair: hover through the fog and filthy air. " * 3 + "when shall"


def encode(text: str) -> tuple[np.ndarray, int]:
    vocabulary = sorted(set(TEXT))
    return np.array([vocabulary.index(c) for c in text], dtype=np.uint8), len(vocabulary)


class ReferenceKneserNey:
    """Chen & Goodman's interpolated modified Kneser-Ney written from the formulas with tuples
    and dicts, sharing no code with pipeline/scoring/ngram.py."""

    def __init__(self, ids: list[int], vocab_size: int, order: int) -> None:
        self.vocab_size, self.order = vocab_size, order
        self.counts: list[Counter] = []
        for length in range(1, order + 1):
            if length == order:
                grams = Counter(tuple(ids[i : i + length]) for i in range(len(ids) - length + 1))
            else:
                longer = {tuple(ids[i : i + length + 1]) for i in range(len(ids) - length)}
                grams = Counter(gram[1:] for gram in longer)
            self.counts.append(grams)
        self.discounts = [self.discount(c) for c in self.counts]

    @staticmethod
    def discount(counts: Counter) -> tuple[float, float, float]:
        n = Counter(counts.values())
        if not (n[1] and n[2] and n[3]):
            return 0.5, 1.0, 1.5
        y = n[1] / (n[1] + 2 * n[2])
        return (
            min(max(1 - 2 * y * n[2] / n[1], 0), 1),
            min(max(2 - 3 * y * n[3] / n[2], 0), 2),
            min(max(3 - 4 * y * n[4] / n[3], 0), 3),
        )

    def probability(self, history: tuple[int, ...], char: int) -> float:
        history = history[max(0, len(history) - self.order + 1) :] if self.order > 1 else ()
        return self._p(history, char, len(history) + 1)

    def _p(self, history: tuple[int, ...], char: int, length: int) -> float:
        if length == 0:
            return 1.0 / self.vocab_size
        lower = self._p(history[1:], char, length - 1)
        grams = self.counts[length - 1]
        following: dict[int, int] = defaultdict(int)
        for gram, count in grams.items():
            if gram[:-1] == history:
                following[gram[-1]] = count
        total = sum(following.values())
        if total == 0:
            return lower
        d1, d2, d3 = self.discounts[length - 1]
        discount = {1: d1, 2: d2}
        gamma = sum(discount.get(c, d3) for c in following.values())
        count = following.get(char, 0)
        kept = max(count - discount.get(count, d3), 0) if count else 0
        return (kept + gamma * lower) / total


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_next_character_probabilities_sum_to_one(order):
    ids, vocab = encode(TEXT)
    model = fit_kneser_ney(ids, vocab, order)
    rng = np.random.default_rng(order)
    for _ in range(20):
        history = rng.integers(0, vocab, size=rng.integers(0, order + 2))
        assert math.isclose(next_char_distribution(model, history).sum(), 1.0, abs_tol=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3, 4, 6])
def test_probabilities_match_the_reference_implementation(order):
    ids, vocab = encode(TEXT)
    model = fit_kneser_ney(ids, vocab, order)
    reference = ReferenceKneserNey(ids.tolist(), vocab, order)
    rng = np.random.default_rng(0)
    for start in rng.integers(0, len(ids) - 8, size=15):
        history = ids[start : start + rng.integers(0, 8)]
        ours = next_char_distribution(model, history)
        for char in range(vocab):
            expected = reference.probability(tuple(history), char)
            assert abs(ours[char] - expected) < 1e-9


def test_bits_per_char_is_the_mean_negative_log2_of_each_continuous_prediction():
    ids, vocab = encode(TEXT)
    train, heldout = ids[:150], ids[150:]
    model = fit_kneser_ney(train, vocab, 3)
    reference = ReferenceKneserNey(train.tolist(), vocab, 3)
    stream = train.tolist() + heldout.tolist()
    expected = np.mean(
        [
            -math.log2(reference.probability(tuple(stream[i - 2 : i]), stream[i]))
            for i in range(150, len(stream))
        ]
    )
    assert math.isclose(bits_per_char(model, heldout, 0, train), expected, rel_tol=1e-12)


def test_windowed_histories_never_reach_across_a_window_start():
    ids = np.arange(7)
    histories = windowed_histories(ids, 3, window=3, prefix=np.array([9, 9]))
    assert histories.tolist() == [[-1, -1], [-1, 0], [0, 1], [-1, -1], [-1, 3], [3, 4], [-1, -1]]


def test_continuous_histories_reach_into_the_warmup_text():
    histories = windowed_histories(np.array([5, 6]), 3, window=0, prefix=np.array([1, 2, 3]))
    assert histories.tolist() == [[2, 3], [3, 5]]


def test_a_longer_history_helps_on_repetitive_text():
    ids, vocab = encode(TEXT)
    scores = [bits_per_char(fit_kneser_ney(ids, vocab, n), ids[-40:], 0, ids[:-40]) for n in (1, 4)]
    assert scores[1] < scores[0] - 1


def test_discounts_come_from_the_count_of_counts():
    counts = np.array([1] * 10 + [2] * 4 + [3] * 2 + [4])
    y = 10 / (10 + 2 * 4)
    assert modified_discounts(counts) == pytest.approx(
        (1 - 2 * y * 4 / 10, 2 - 3 * y * 2 / 4, 3 - 4 * y * 1 / 2)
    )


def test_orders_past_an_exact_uint64_code_are_refused():
    assert max_exact_order(42) == 11
    with pytest.raises(PipelineError, match="order 12 must be between 1 and 11"):
        fit_kneser_ney(np.zeros(100, dtype=np.uint8), 42, 12)


def test_fitting_needs_more_training_characters_than_the_order():
    with pytest.raises(PipelineError, match="3 training characters are too few for order 3"):
        fit_kneser_ney(np.array([0, 1, 2]), vocab_size=3, order=3)
    model = fit_kneser_ney(np.array([0, 1, 2, 0]), vocab_size=3, order=3)  # one more: it fits
    assert model.order == 3
