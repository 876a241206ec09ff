import math
import os
import subprocess
import sys

import pytest

from pipeline.scoring.text_metrics import (
    bigram_distribution,
    copied_ngram_share,
    distinct_char_ngrams,
    distinct_word_ngrams,
    jensen_shannon,
    known_word_share,
    longest_copied,
    ngrams,
    repeated_ngram_share,
    sample_metrics,
    words,
)


def test_words_keep_inner_apostrophes():
    assert words("'Tis the Thane's -- sword!") == ["tis", "the", "thane's", "sword"]


def test_ngrams_of_strings_and_lists():
    assert ngrams("abcd", 2) == ["ab", "bc", "cd"]
    assert ngrams(["a", "b", "c"], 2) == [("a", "b"), ("b", "c")]
    assert ngrams("ab", 3) == []


def test_distinct_ratios():
    assert distinct_word_ngrams(["the sense of the sense"], 1) == pytest.approx(3 / 5)
    assert distinct_word_ngrams(["the sense of the sense"], 2) == pytest.approx(3 / 4)
    assert distinct_char_ngrams(["aaaa"], 2) == pytest.approx(1 / 3)
    assert distinct_word_ngrams([""], 1) == 0.0


def test_known_word_share():
    assert known_word_share(["fair is fowl"], {"fair", "is", "foul"}) == pytest.approx(2 / 3)


def test_longest_copied_finds_the_longest_verbatim_passage():
    reference = "fair is foul and foul is fair"
    assert longest_copied("xx foul and fouq", reference) == len(" foul and fou")
    assert longest_copied("zzz", reference) == 0
    assert longest_copied("fair is foul and foul is fair", reference) == len(reference)


def test_copied_ngram_share():
    reference = set(ngrams("abcdefgh", 3))
    assert copied_ngram_share(["abcx"], reference, 3) == pytest.approx(1 / 2)


def test_repeated_ngram_share_detects_loops():
    # 9 words -> 6 four-grams, of which only 3 are distinct
    assert repeated_ngram_share("the sense of the sense of the sense of", 4) == pytest.approx(0.5)
    assert repeated_ngram_share("one two three four five", 4) == 0.0


def test_jensen_shannon_bounds():
    p = bigram_distribution("abab")
    assert jensen_shannon(p, p) == pytest.approx(0.0)
    assert jensen_shannon({"aa": 1.0}, {"bb": 1.0}) == pytest.approx(1.0)
    half = jensen_shannon({"aa": 1.0}, {"aa": 0.5, "bb": 0.5})
    assert 0 < half < 1
    assert math.isclose(half, jensen_shannon({"aa": 0.5, "bb": 0.5}, {"aa": 1.0}))


def test_sample_metrics_has_every_key():
    training = "fair is foul and foul is fair"
    metrics = sample_metrics(
        ["fair is foul"],
        training,
        set(words(training)),
        set(ngrams(training, 8)),
        bigram_distribution(training),
    )
    assert metrics["known_word_share"] == 1.0
    assert metrics["longest_copied"] == len("fair is foul")
    assert metrics["copied_8gram_share"] == 1.0
    assert set(metrics) == {
        "distinct_1",
        "distinct_2",
        "distinct_3",
        "distinct_char_4",
        "known_word_share",
        "longest_copied",
        "copied_8gram_share",
        "repeated_4gram_share",
        "bigram_js_divergence",
    }


def test_jensen_shannon_is_the_same_to_the_bit_under_any_hash_seed():
    """evaluate writes it into a DVC-tracked metric, so a re-run must give the same bytes."""
    script = (
        "from pipeline.scoring.text_metrics import bigram_distribution as b, jensen_shannon as js\n"
        "print(repr(js(b('when shall we three meet again'), b('in thunder, lightning, or rain'))))"
    )
    results = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in range(8)
    }
    assert len(results) == 1, results


def test_sample_metrics_values_each_computed_by_hand():
    """Two samples whose word unigrams, bigrams and trigrams all differ in their distinct share,
    so a metric computed with the wrong n (or the wrong function) shows."""
    samples = ["a b a b a", "a b c"]
    metrics = sample_metrics(
        samples,
        training_text="a b a b a",
        training_words={"a", "b"},
        training_8grams={"a b a b "},
        heldout_bigrams={"zz": 1.0},
    )
    assert metrics == {
        "distinct_1": 3 / 8,  # a b a b a | a b c: 8 words, 3 distinct
        "distinct_2": 3 / 6,  # ab ba ab ba | ab bc
        "distinct_3": 3 / 4,  # aba bab aba | abc
        "distinct_char_4": 5 / 8,  # 6 + 2 character 4-grams, 5 distinct
        "known_word_share": 7 / 8,  # only "c" is not a training word
        "longest_copied": 9.0,  # the first sample is the training text
        "copied_8gram_share": 1 / 2,  # "a b a b " and " b a b a": the first is known
        "repeated_4gram_share": 0.0,  # abab baba: no repeat; the second has no 4-gram
        "bigram_js_divergence": 1.0,  # disjoint from the held-out bigrams
    }
