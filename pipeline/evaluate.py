"""Stage 7, evaluate: test likelihood beside the n-gram baseline, plus metrics on generated text.

Reads `models/model.keras`, `data/encoded/`, `reports/baseline.json` and the
`evaluate` params; writes `reports/metrics.json` (the headline numbers, what `dvc metrics show`
shows), `reports/sampling.csv` (the metrics of generated text against temperature, a `dvc plots`
source) and `reports/samples.md` (every sample next to its prompt), and logs all of them into the
MLflow run that the train stage opened.
Run with `python -m pipeline.evaluate`.

The test text is scored here and only here, under both protocols of `scoring/likelihood.py`
(continuous, the headline, and windowed), next to the validation text under the same two:
`metrics.json` holds bits per character as `test.bpc` (continuous), `test.bpc_windowed`, `val.bpc`,
`val.bpc_windowed`, the n-gram's `ngram_test_bpc` (continuous) and `margin_bpc`, the n-gram's
test bits per character minus the model's (positive means the LSTM is better); with extra training
text, the same of the corpus-adapted mixture (`mixture_test_bpc`, `mixture_margin_bpc`). Prompts
come from the test text; novelty is measured against the training text.
"""

from __future__ import annotations

import csv
import io
import logging
from typing import Any

import keras
import mlflow
import numpy as np

from pipeline.core import files
from pipeline.core.cli import run_stage
from pipeline.core.config import EvaluateParams
from pipeline.core.errors import PipelineError
from pipeline.core.metrics import flatten_metrics
from pipeline.core.params import load_params
from pipeline.core.paths import (
    BASELINE_PATH,
    HISTORY_PATH,
    METRICS_PATH,
    MODEL_PATH,
    SAMPLES_PATH,
    SAMPLING_PATH,
)
from pipeline.corpus.encoded import EncodedData, heldout_split, load_encoded
from pipeline.corpus.vocabulary import decode_ids
from pipeline.generation.decoding import SamplingSettings
from pipeline.generation.sampler import Sampler, make_sampler
from pipeline.lstm.model import architecture_of, load_model
from pipeline.scoring.likelihood import bits, continuous_loss, windowed_loss
from pipeline.scoring.text_metrics import bigram_distribution, ngrams, sample_metrics, words
from pipeline.tracking import cards
from pipeline.tracking import runs as tracking
from pipeline.tracking.plots import plot_history, plot_sampling

log = logging.getLogger(__name__)

GREEDY = 0.0
NGRAM_KEYS = ("order", "validation", "test")  # what MLflow gets of baseline.json (as `ngram.`)
MIXTURE_KEYS = ("own_order", "own_weight", "validation", "test")  # and of its mixture
CARD_TEMPERATURE = 0.8  # the model card shows a sample at the temperature nearest this


def heldout_metrics(
    model: keras.Model, data: EncodedData, split: str, batch_size: int
) -> dict[str, float]:
    """Bits per character of a held-out split ("validation" or "test"): `bpc` under the
    continuous protocol (the sequence model only) and `bpc_windowed`.

    The tutorial model has no state to carry: its only protocol is its own sliding 50-character
    window (every character from position 50 on), reported as windowed."""
    ids, warmup = heldout_split(data, split)
    metrics = {"bpc_windowed": bits(windowed_loss(model, ids, data, batch_size))}
    if architecture_of(model) == "sequence":
        metrics["bpc"] = bits(continuous_loss(model, ids, warmup))
    return dict(sorted(metrics.items()))


def headline_bits(metrics: dict[str, float]) -> float:
    """The continuous figure where there is one, else the windowed (the tutorial's protocol)."""
    return metrics.get("bpc", metrics["bpc_windowed"])


def pick_prompts(text: str, count: int, length: int, seed: int) -> list[str]:
    """`count` prompts of `length` characters from random positions of `text` (seeded)."""
    if len(text) <= length:
        raise PipelineError(f"test text ({len(text)} chars) is shorter than a prompt")
    starts = np.random.default_rng(seed).integers(0, len(text) - length, size=count)
    return [text[start : start + length] for start in starts]


def temperature_label(temperature: float) -> str:
    """`greedy`, or the temperature with two decimals (`t0.50`, `t1.00`): one width, so the
    metric names sort and line up."""
    return "greedy" if temperature == GREEDY else f"t{temperature:.2f}"


def render_samples(samples: dict[float, list[str]], prompts: list[str]) -> str:
    lines = ["# Generated samples", "", "Each prompt comes from the held-out test text.", ""]
    for temperature, texts in samples.items():
        lines += [f"## {temperature_label(temperature)}", ""]
        for number, (prompt, text) in enumerate(zip(prompts, texts, strict=True), 1):
            lines += [
                f"### Sample {number}",
                "",
                "Prompt:",
                "",
                "```text",
                prompt,
                "```",
                "",
                "Continuation:",
                "",
                "```text",
                text,
                "```",
                "",
            ]
    return "\n".join(lines)


def sampling_csv(rows: dict[float, dict[str, float]]) -> str:
    buffer = io.StringIO()
    names = sorted(next(iter(rows.values())))
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["temperature", *names])
    for temperature, metrics in sorted(rows.items()):
        writer.writerow([temperature, *(f"{metrics[name]:.6f}" for name in names)])
    return buffer.getvalue()


def evaluate_sampling(
    sampler: Sampler, data: EncodedData, params: EvaluateParams
) -> tuple[list[str], dict[float, list[str]], dict[float, dict[str, float]]]:
    training_text = decode_ids(data.train_ids, data.vocabulary)
    test_text = decode_ids(data.test_ids, data.vocabulary)
    prompts = pick_prompts(test_text, params.num_samples, params.prompt_length, params.seed)
    reference = {
        "training_text": training_text,
        "training_words": set(words(training_text)),
        "training_8grams": set(ngrams(training_text, 8)),
        "heldout_bigrams": bigram_distribution(test_text),
    }
    samples, rows = {}, {}
    for temperature in [GREEDY, *params.temperatures]:
        settings = SamplingSettings(temperature=temperature, seed=params.seed)
        samples[temperature] = sampler.generate(prompts, params.sample_length, settings)
        rows[temperature] = sample_metrics(samples[temperature], **reference)  # type: ignore[arg-type]
        log.info(
            "%s: %s",
            temperature_label(temperature),
            ", ".join(f"{k} {v:.3f}" for k, v in rows[temperature].items()),
        )
    return prompts, samples, rows


def compare_with_baseline(test: dict[str, float], baseline: dict[str, Any]) -> dict[str, float]:
    """The n-gram's test bits per character and the margin over it (continuous); with extra
    training text, the same of the corpus-adapted mixture too (`baseline.mixture`)."""
    ngram = baseline["test"]["bits_per_char_continuous"]
    comparison = {"ngram_test_bpc": ngram, "margin_bpc": ngram - headline_bits(test)}
    if "mixture" in baseline:
        mixture = baseline["mixture"]["test"]["bits_per_char_continuous"]
        comparison |= {
            "mixture_test_bpc": mixture,
            "mixture_margin_bpc": mixture - headline_bits(test),
        }
    return comparison


def main() -> None:
    params = load_params()
    data = load_encoded()
    model = load_model(MODEL_PATH)
    batch = params.train.batch_size
    validation = heldout_metrics(model, data, "validation", batch)
    test = heldout_metrics(model, data, "test", batch)
    baseline = files.read_json(BASELINE_PATH)
    comparison = compare_with_baseline(test, baseline)
    log.info(
        "test: %.4f bits per character; n-gram baseline %.4f; margin %+.4f",
        headline_bits(test),
        comparison["ngram_test_bpc"],
        comparison["margin_bpc"],
    )
    sampler = make_sampler(model, data.vocabulary)
    prompts, samples, rows = evaluate_sampling(sampler, data, params.evaluate)

    metrics = {"test": test, "val": validation, **comparison}
    sampling = {temperature_label(t): row for t, row in rows.items()}
    files.write_json(METRICS_PATH, metrics)
    files.write_text(SAMPLING_PATH, sampling_csv(rows))
    files.write_text(SAMPLES_PATH, render_samples(samples, prompts))

    with tracking.resume_recorded_run(MODEL_PATH, params.mlflow.experiment):
        tracking.log_final_metrics(
            flatten_metrics(metrics)
            | flatten_metrics({key: baseline[key] for key in NGRAM_KEYS}, "ngram.")
            | flatten_metrics(
                {key: baseline.get("mixture", {}).get(key) for key in MIXTURE_KEYS},
                "ngram.mixture.",
            )
            | flatten_metrics(sampling, "sampling.")
        )
        for path in (METRICS_PATH, SAMPLING_PATH, SAMPLES_PATH, BASELINE_PATH):
            mlflow.log_artifact(str(path), artifact_path="evaluation")
        mlflow.log_figure(plot_sampling(rows), "plots/sampling_by_temperature.png")
        mlflow.log_figure(plot_history(HISTORY_PATH), "plots/training_history.png")
        card_temperature = min(
            params.evaluate.temperatures, key=lambda t: abs(t - CARD_TEMPERATURE)
        )
        sample = (prompts[0], samples[card_temperature][0])
        cards.publish_card(params, flatten_metrics(metrics), sample)


if __name__ == "__main__":
    run_stage("evaluate", main)
