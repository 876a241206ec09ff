"""evaluate's pure pieces: prompts, labels, the CSV and Markdown reports, metric names."""

from __future__ import annotations

import math

import pytest

from pipeline.core.errors import PipelineError
from pipeline.evaluate import (
    compare_with_baseline,
    headline_bits,
    pick_prompts,
    render_samples,
    sampling_csv,
    temperature_label,
)

BASELINE = {
    "model": "n-gram",
    "order": 6,
    "validation": {"bits_per_char_continuous": 2.4, "bits_per_char_windowed": 2.5},
    "test": {"bits_per_char_continuous": 2.25, "bits_per_char_windowed": 2.3},
    "validation_by_order": {"6": {"continuous": 2.4, "windowed": 2.5}},
}


def test_prompts_are_seeded_slices_of_the_text():
    text = "".join(chr(97 + i % 26) for i in range(500))
    prompts = pick_prompts(text, 5, 12, seed=7)
    assert prompts == pick_prompts(text, 5, 12, seed=7)
    assert prompts != pick_prompts(text, 5, 12, seed=8)
    assert all(len(p) == 12 and p in text for p in prompts)


def test_a_text_shorter_than_a_prompt_is_refused():
    with pytest.raises(PipelineError, match=r"test text \(10 chars\) is shorter than a prompt"):
        pick_prompts("a" * 10, 1, 10, seed=0)


def test_temperature_labels_have_one_width():
    assert [temperature_label(t) for t in (0.0, 0.5, 1.0, 1.25)] == [
        "greedy",
        "t0.50",
        "t1.00",
        "t1.25",
    ]


def test_sampling_csv_has_one_row_per_temperature_in_order():
    rows = {1.0: {"b": 0.5, "a": 1.0}, 0.0: {"b": 0.25, "a": 2.0}}
    assert sampling_csv(rows) == "temperature,a,b\n0.0,2.000000,0.250000\n1.0,1.000000,0.500000\n"


def test_samples_markdown_pairs_each_prompt_with_its_continuation():
    markdown = render_samples({0.0: ["x1", "x2"], 0.8: ["y1", "y2"]}, ["p1", "p2"])
    assert "## greedy" in markdown and "## t0.80" in markdown
    assert markdown.index("p2") < markdown.index("x2") < markdown.index("## t0.80")
    assert markdown.count("```text") == 8


def test_sampling_with_mismatched_prompts_is_an_error():
    with pytest.raises(ValueError):
        render_samples({0.0: ["only one"]}, ["p1", "p2"])


def test_the_margin_is_baseline_minus_model_on_test_continuous():
    comparison = compare_with_baseline({"bpc": 2.0, "bpc_windowed": 2.1}, BASELINE)
    assert comparison == {"ngram_test_bpc": 2.25, "margin_bpc": 0.25}


def test_with_extra_text_the_corpus_adapted_mixture_is_compared_too():
    mixture = {"own_order": 8, "own_weight": 0.15, "test": {"bits_per_char_continuous": 2.125}}
    test = {"bpc": 2.0, "bpc_windowed": 2.1}
    comparison = compare_with_baseline(test, {**BASELINE, "mixture": mixture})
    assert comparison == {
        "ngram_test_bpc": 2.25,
        "margin_bpc": 0.25,
        "mixture_test_bpc": 2.125,
        "mixture_margin_bpc": 0.125,
    }


def test_the_tutorial_model_is_compared_by_its_own_window_protocol():
    assert headline_bits({"bpc_windowed": 3.0}) == 3.0
    comparison = compare_with_baseline({"bpc_windowed": 3.0}, BASELINE)
    assert math.isclose(comparison["margin_bpc"], -0.75)
