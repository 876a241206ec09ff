"""Stage 6, evaluate: held-out likelihood plus metrics on text the model generates.

Reads `models/model.keras`, `models/run.json`, `data/encoded/` and the `evaluate` params; writes
`reports/metrics.json` (a DVC metric), `reports/sampling.csv` (metrics against temperature, a
`dvc plots` source) and `reports/samples.md` (every sample next to its prompt), and logs all of
them into the MLflow run that the train stage opened. Run with `python -m pipeline.evaluate`.
"""

from __future__ import annotations

import csv
import io
import logging
import math

import keras
import matplotlib
import mlflow
import numpy as np

from pipeline import files, tracking
from pipeline.cli import run_stage
from pipeline.config import REPORTS_DIR, EvaluateParams, load_params
from pipeline.data import EncodedData, load_encoded, validation_dataset
from pipeline.encode import decode_ids
from pipeline.errors import PipelineError
from pipeline.model import architecture_of, load_model
from pipeline.sampling import Sampler, SamplingSettings, make_sampler
from pipeline.text_metrics import bigram_distribution, ngrams, sample_metrics, words
from pipeline.train import HISTORY_PATH, MODEL_PATH

matplotlib.use("Agg")  # no display needed; must precede pyplot
from matplotlib import pyplot  # noqa: E402

log = logging.getLogger(__name__)

GREEDY = 0.0


def heldout_metrics(model: keras.Model, data: EncodedData, batch_size: int) -> dict[str, float]:
    """Mean cross-entropy per validation character, in nats and bits, and perplexity, over the
    same held-out pass that train's validation loss uses (`pipeline.data.validation_dataset`)."""
    val = validation_dataset(data, architecture_of(model), batch_size)
    loss = float(model.evaluate(val, verbose=0))
    return {"loss": loss, "bits_per_char": loss / math.log(2), "perplexity": math.exp(loss)}


def pick_prompts(text: str, count: int, length: int, seed: int) -> list[str]:
    """`count` prompts of `length` characters from random positions of `text` (seeded)."""
    if len(text) <= length:
        raise PipelineError(f"validation text ({len(text)} chars) is shorter than a prompt")
    starts = np.random.default_rng(seed).integers(0, len(text) - length, size=count)
    return [text[start : start + length] for start in starts]


def temperature_label(temperature: float) -> str:
    return "greedy" if temperature == GREEDY else f"t{temperature:g}"


def render_samples(samples: dict[float, list[str]], prompts: list[str]) -> str:
    lines = ["# Generated samples", "", "Each prompt comes from the held-out validation text.", ""]
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


def plot_sampling(rows: dict[float, dict[str, float]]) -> pyplot.Figure:
    figure, axis = pyplot.subplots(figsize=(7, 4))
    temperatures = sorted(rows)
    for name in ("distinct_2", "known_word_share", "copied_8gram_share", "repeated_4gram_share"):
        axis.plot(temperatures, [rows[t][name] for t in temperatures], marker="o", label=name)
    axis.set_xlabel("temperature (0 = greedy)")
    axis.legend()
    return figure


def evaluate_sampling(
    sampler: Sampler, data: EncodedData, params: EvaluateParams
) -> tuple[list[str], dict[float, list[str]], dict[float, dict[str, float]]]:
    training_text = decode_ids(data.train_ids, data.vocabulary)
    validation_text = decode_ids(data.val_ids, data.vocabulary)
    prompts = pick_prompts(validation_text, params.num_samples, params.prompt_length, params.seed)
    reference = {
        "training_text": training_text,
        "training_words": set(words(training_text)),
        "training_8grams": set(ngrams(training_text, 8)),
        "validation_bigrams": bigram_distribution(validation_text),
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


def main() -> None:
    params = load_params()
    data = load_encoded()
    model = load_model(MODEL_PATH)
    heldout = heldout_metrics(model, data, params.train.batch_size)
    log.info("held-out: %.4f bits per character", heldout["bits_per_char"])
    sampler = make_sampler(model, data.vocabulary)
    prompts, samples, rows = evaluate_sampling(sampler, data, params.evaluate)

    metrics = {
        "heldout": heldout,
        "sampling": {temperature_label(t): row for t, row in rows.items()},
    }
    files.write_json(REPORTS_DIR / "metrics.json", metrics)
    files.write_text(REPORTS_DIR / "sampling.csv", sampling_csv(rows))
    files.write_text(REPORTS_DIR / "samples.md", render_samples(samples, prompts))

    with tracking.resume_recorded_run():
        mlflow.log_metrics({f"heldout_{name}": value for name, value in heldout.items()})
        for temperature, row in rows.items():
            label = temperature_label(temperature)
            mlflow.log_metrics({f"sample_{label}_{name}": value for name, value in row.items()})
        for path in ("metrics.json", "sampling.csv", "samples.md"):
            mlflow.log_artifact(str(REPORTS_DIR / path), artifact_path="evaluation")
        mlflow.log_figure(plot_sampling(rows), "plots/sampling_by_temperature.png")
        mlflow.log_figure(plot_history(), "plots/training_history.png")


def plot_history() -> pyplot.Figure:
    with HISTORY_PATH.open(encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    figure, axis = pyplot.subplots(figsize=(7, 4))
    for key in ("loss", "val_loss"):
        axis.plot([int(r["epoch"]) for r in rows], [float(r[key]) for r in rows], label=key)
    axis.set_xlabel("epoch")
    axis.set_ylabel("cross-entropy (nats per character)")
    axis.legend()
    return figure


if __name__ == "__main__":
    run_stage("evaluate", main)
