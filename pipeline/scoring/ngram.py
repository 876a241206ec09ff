"""Interpolated modified Kneser-Ney character n-gram model: the classical baseline to beat.

Chen & Goodman (1998), "An empirical study of smoothing techniques for language modeling",
section 3.4 (interpolated, three discounts per order from the count-of-counts):

    P(c | h) = (max(n(hc) - D(n(hc)), 0) + gamma(h) * P(c | h')) / n(h)     if n(h) > 0
             = P(c | h')                                                     otherwise
    gamma(h) = D1 N1(h.) + D2 N2(h.) + D3+ N3+(h.)

where `h'` drops the oldest character of `h`. The highest order counts occurrences; every lower
order counts continuations (in how many distinct contexts a string follows a character), and
below order 1 is the uniform distribution over the vocabulary.

Counts live in numpy arrays, never Python dicts: an n-gram of ids is one exact integer code
`sum(id_i * V**(n-1-i))` (exact in uint64 while `V**order < 2**64`), each order holds its sorted
distinct codes with their counts, and scoring looks them up with `searchsorted`. Memory is about
20 bytes per distinct n-gram per order, plus 16 bytes per training character while one order is
being counted; everything is vectorised over positions, so scoring a text is one pass per order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.core.errors import PipelineError


@dataclass(frozen=True)
class OrderCounts:
    """The counts of one order `k` (n-grams of `k` characters)."""

    codes: np.ndarray  # (distinct,) uint64, sorted: every distinct k-gram
    counts: np.ndarray  # (distinct,) int64: its occurrences (top order) or continuations
    contexts: np.ndarray  # (contexts,) uint64, sorted: every distinct (k-1)-character context
    context_totals: np.ndarray  # (contexts,) int64: n(h), the sum of counts over what follows h
    context_gammas: np.ndarray  # (contexts,) float64: gamma(h), the mass given to the lower order
    discounts: tuple[float, float, float]  # D1, D2, D3+


@dataclass(frozen=True)
class KneserNey:
    vocab_size: int
    order: int
    levels: tuple[OrderCounts, ...]  # levels[k - 1] holds the k-grams, k = 1..order


def max_exact_order(vocab_size: int) -> int:
    """The longest n-gram whose code fits exactly in a uint64."""
    return int(64 * math.log(2) / math.log(max(vocab_size, 2)))


def ngram_codes(ids: np.ndarray, length: int, vocab_size: int) -> np.ndarray:
    """`(len(ids) - length + 1,)` uint64 codes of every `length`-gram of `ids`, in order."""
    count = len(ids) - length + 1
    codes = np.zeros(max(count, 0), dtype=np.uint64)
    base = np.uint64(vocab_size)
    for offset in range(length):
        codes = codes * base + ids[offset : offset + count].astype(np.uint64)
    return codes


def modified_discounts(counts: np.ndarray) -> tuple[float, float, float]:
    """D1, D2, D3+ from the count-of-counts n1..n4 (Chen & Goodman, eq. 26), each in [0, c]."""
    n1, n2, n3, n4 = (int(np.count_nonzero(counts == c)) for c in (1, 2, 3, 4))
    if n1 == 0 or n2 == 0 or n3 == 0:
        # Too little data for the estimate (a tiny corpus): fall back to the usual 0.5/1/1.5.
        return 0.5, 1.0, 1.5
    y = n1 / (n1 + 2 * n2)
    d1, d2, d3 = 1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3
    return min(max(d1, 0.0), 1.0), min(max(d2, 0.0), 2.0), min(max(d3, 0.0), 3.0)


def count_level(codes: np.ndarray, counts: np.ndarray, vocab_size: int) -> OrderCounts:
    """Context totals, gammas and discounts for distinct `codes` of one order with `counts`."""
    discounts = modified_discounts(counts)
    context_of = codes // np.uint64(vocab_size)  # drop the newest character; sorted with codes
    contexts, first = np.unique(context_of, return_index=True)
    totals = np.add.reduceat(counts, first)
    d1, d2, d3 = discounts
    weights = np.where(counts == 1, d1, np.where(counts == 2, d2, d3))
    gammas = np.add.reduceat(weights, first)
    return OrderCounts(codes, counts, contexts, totals, gammas, discounts)


def fit_kneser_ney(ids: np.ndarray, vocab_size: int, order: int) -> KneserNey:
    """Count every order 1..`order` of `ids` (continuations below the top order)."""
    if not 1 <= order <= max_exact_order(vocab_size):
        raise PipelineError(
            f"n-gram order {order} must be between 1 and {max_exact_order(vocab_size)} "
            f"for a vocabulary of {vocab_size}"
        )
    if len(ids) <= order:
        raise PipelineError(f"{len(ids)} training characters are too few for order {order}")
    levels = []
    for length in range(1, order + 1):
        if length == order:  # the top order: occurrences
            codes, counts = np.unique(ngram_codes(ids, length, vocab_size), return_counts=True)
        else:  # continuations: distinct (length + 1)-grams, grouped by their last `length` chars
            longer = np.unique(ngram_codes(ids, length + 1, vocab_size))
            suffixes = longer % np.uint64(vocab_size) ** np.uint64(length)
            codes, counts = np.unique(suffixes, return_counts=True)
        levels.append(count_level(codes, counts.astype(np.int64), vocab_size))
    return KneserNey(vocab_size, order, tuple(levels))


def _lookup(keys: np.ndarray, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of each key in the sorted `table`, and whether it is there."""
    if len(table) == 0:
        return np.zeros(len(keys), dtype=np.int64), np.zeros(len(keys), dtype=bool)
    index = np.minimum(np.searchsorted(table, keys), len(table) - 1)
    return index, table[index] == keys


def probabilities_of(model: KneserNey, histories: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """P(target | history) for each row: `histories` `(n, order - 1)` int ids, where -1 marks
    a position before the start (a shorter history), `targets` `(n,)` ids."""
    vocab = np.uint64(model.vocab_size)
    rows = len(targets)
    probability = np.full(rows, 1.0 / model.vocab_size)
    context = np.zeros(rows, dtype=np.uint64)  # code of the last k-1 history characters
    known = np.ones(rows, dtype=bool)  # the history reaches back k-1 characters
    for length, level in enumerate(model.levels, start=1):
        if length > 1:  # extend the context by one older character
            older = histories[:, histories.shape[1] - (length - 1)]
            known &= older >= 0
            context = context + np.where(older >= 0, older, 0).astype(np.uint64) * vocab ** (
                np.uint64(length - 2)
            )
        at, found = _lookup(context, level.contexts)
        found &= known
        total = np.where(found, level.context_totals[at], 1)
        gamma = np.where(found, level.context_gammas[at], 0.0)
        index, seen = _lookup(context * vocab + targets.astype(np.uint64), level.codes)
        count = np.where(seen & found, level.counts[index], 0)
        d1, d2, d3 = level.discounts
        discount = np.where(count == 1, d1, np.where(count == 2, d2, d3))
        higher = (np.maximum(count - discount, 0.0) + gamma * probability) / total
        probability = np.where(found, higher, probability)
    return probability


def windowed_histories(ids: np.ndarray, order: int, window: int, prefix: np.ndarray) -> np.ndarray:
    """`(len(ids), order - 1)` histories, oldest first: the `order - 1` ids before each position,
    -1 where there is none. `window == 0` is continuous and reaches back into `prefix` (the text
    just before `ids`, the warm-up); `window > 0` starts afresh every `window` characters, as the
    LSTM's windowed protocol resets its state."""
    width = order - 1
    reach = min(width, len(prefix)) if window == 0 else 0  # warm-up characters a history uses
    before = prefix[len(prefix) - reach :].astype(np.int64)
    padding = np.full(width - reach, -1, dtype=np.int64)
    stream = np.concatenate([padding, before, ids.astype(np.int64)])
    positions = np.arange(len(ids))
    histories = np.empty((len(ids), width), dtype=np.int64)
    for column in range(width):
        histories[:, column] = stream[positions + column]
        if window:  # this column reaches `width - column` characters back
            histories[positions % window < width - column, column] = -1
    return histories


def text_probabilities(
    model: KneserNey, ids: np.ndarray, window: int = 0, prefix: np.ndarray | None = None
) -> np.ndarray:
    """P of each of `ids` given the text before it: continuous (`window == 0`, warmed up on
    `prefix`) or with the history reset every `window` characters (as the LSTM's windowed
    protocol resets its state)."""
    warmup = np.zeros(0, dtype=ids.dtype) if prefix is None else prefix
    return probabilities_of(model, windowed_histories(ids, model.order, window, warmup), ids)


def mean_bits(probability: np.ndarray) -> float:
    """Mean -log2 of the probabilities: bits per character."""
    return float(-np.mean(np.log2(probability)))


def bits_per_char(
    model: KneserNey, ids: np.ndarray, window: int = 0, prefix: np.ndarray | None = None
) -> float:
    """Mean -log2 P over `ids` under one protocol (see `text_probabilities`)."""
    return mean_bits(text_probabilities(model, ids, window, prefix))


def next_char_distribution(model: KneserNey, history: np.ndarray) -> np.ndarray:
    """`(vocab,)` P(c | history) for every character c (sums to 1): for tests and inspection."""
    width = model.order - 1
    padded = np.full(width, -1, dtype=np.int64)
    if width:
        tail = np.asarray(history, dtype=np.int64)[-width:]
        padded[width - len(tail) :] = tail
    candidates = np.arange(model.vocab_size)
    return probabilities_of(model, np.tile(padded, (model.vocab_size, 1)), candidates)
