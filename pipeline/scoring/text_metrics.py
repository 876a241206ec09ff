"""Pure metrics on generated text: diversity, realism, novelty and repetition.

Every function takes strings and returns a number; none touches files or models, so each can be
checked on hand-made strings with known answers (see tests/test_text_metrics.py).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")


def words(text: str) -> list[str]:
    """Lower-cased words: runs of letters, with inner apostrophes (`'tis` -> `tis`)."""
    return _WORD.findall(text.lower())


def ngrams(items: Sequence[str] | str, n: int) -> list[tuple[str, ...] | str]:
    if isinstance(items, str):
        return [items[i : i + n] for i in range(len(items) - n + 1)]
    return [tuple(items[i : i + n]) for i in range(len(items) - n + 1)]


def distinct_ratio(grams: Iterable[object]) -> float:
    """Unique n-grams over all n-grams (1.0 = no n-gram repeats; 0.0 when there are none)."""
    grams = list(grams)
    return len(set(grams)) / len(grams) if grams else 0.0


def distinct_word_ngrams(samples: Sequence[str], n: int) -> float:
    return distinct_ratio(g for sample in samples for g in ngrams(words(sample), n))


def distinct_char_ngrams(samples: Sequence[str], n: int) -> float:
    return distinct_ratio(g for sample in samples for g in ngrams(sample, n))


def known_word_share(samples: Sequence[str], vocabulary: set[str]) -> float:
    """Share of generated words that occur as words in the training text."""
    generated = [word for sample in samples for word in words(sample)]
    return sum(word in vocabulary for word in generated) / len(generated) if generated else 0.0


def longest_copied(sample: str, reference: str) -> int:
    """Length of the longest substring of `sample` that appears verbatim in `reference`.

    Grows a candidate only past the best length found so far, so it needs about
    `len(sample) + answer` substring searches instead of one per (start, length) pair.
    """
    best = 0
    for start in range(len(sample)):
        while start + best < len(sample) and sample[start : start + best + 1] in reference:
            best += 1
    return best


def copied_ngram_share(samples: Sequence[str], reference_ngrams: set[str], n: int = 8) -> float:
    """Share of the samples' character n-grams that also occur in the training text."""
    grams = [g for sample in samples for g in ngrams(sample, n)]
    return sum(g in reference_ngrams for g in grams) / len(grams) if grams else 0.0


def repeated_ngram_share(sample: str, n: int = 4) -> float:
    """Share of word n-grams in one sample that repeat an earlier n-gram of the same sample."""
    grams = ngrams(words(sample), n)
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def bigram_distribution(text: str) -> dict[str, float]:
    counts = Counter(ngrams(text, 2))
    total = sum(counts.values())
    return {str(gram): count / total for gram, count in counts.items()} if total else {}


def jensen_shannon(p: dict[str, float], q: dict[str, float]) -> float:
    """Jensen-Shannon divergence in bits (0 = identical, 1 = disjoint supports)."""
    divergence = 0.0
    # In sorted order: a set's order changes with Python's hash seed, and so would the float sum.
    for key in sorted(p.keys() | q.keys()):
        p_value, q_value = p.get(key, 0.0), q.get(key, 0.0)
        middle = (p_value + q_value) / 2
        if p_value:
            divergence += 0.5 * p_value * math.log2(p_value / middle)
        if q_value:
            divergence += 0.5 * q_value * math.log2(q_value / middle)
    return max(0.0, divergence)


def sample_metrics(
    samples: Sequence[str],
    training_text: str,
    training_words: set[str],
    training_8grams: set[str],
    heldout_bigrams: dict[str, float],
) -> dict[str, float]:
    """Every sampling metric for one temperature's samples."""
    return {
        "distinct_1": distinct_word_ngrams(samples, 1),
        "distinct_2": distinct_word_ngrams(samples, 2),
        "distinct_3": distinct_word_ngrams(samples, 3),
        "distinct_char_4": distinct_char_ngrams(samples, 4),
        "known_word_share": known_word_share(samples, training_words),
        "longest_copied": float(max(longest_copied(s, training_text) for s in samples)),
        "copied_8gram_share": copied_ngram_share(samples, training_8grams, 8),
        "repeated_4gram_share": sum(repeated_ngram_share(s) for s in samples) / len(samples),
        "bigram_js_divergence": jensen_shannon(
            bigram_distribution("".join(samples)), heldout_bigrams
        ),
    }
