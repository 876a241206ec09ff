"""Generation speed: the project's sampler (XLA-compiled loop, Gumbel-max draw) against the former
one (graph-only loop, categorical draw: the code before it) and the bound of the model's own
matrix-vector chain, interleaved in one run; optionally the tutorial's per-character loop.

    python bench/generate_speed.py                 # ~2 min on 2 CPU cores
    python bench/generate_speed.py --tutorial      # also the tutorial's `model.predict` loop
    python bench/generate_speed.py --model /tmp/run1/models/model.keras \\
        --vocab /tmp/run1/data/encoded/vocab.json

Uses the trained model at `models/model.keras` (or `--model`); when there is none, it builds the
default-size model from `params.yaml` with random weights (the speed does not depend on the
weights). After a warm-up that compiles every function (so compilation is not timed), each of
`--rounds` rounds times, in turn: the former and the new sampler on one stream of `--length`
characters, the same two on a batch of `--batch`, and the bound, in numpy, with one BLAS thread
and with two (`bench/parts.matvec_chain`: per character only the three matrix-vector products,
nothing else). The samplers' times include priming the `seq_len`-character prompt. Printed:
median characters per second of each, and the medians over rounds of the paired ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from threadpoolctl import threadpool_limits

# Run as a script from anywhere: the repository root holds the `pipeline` package, whose import
# also quiets TensorFlow's start-up logging (so it comes before TensorFlow's first import).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import pipeline  # noqa: F401

# isort: split
from bench.parts import FormerSampler, cpu_model, interleave, matvec_chain, median_ratio
from pipeline.core.params import load_params
from pipeline.core.paths import MODEL_PATH, VOCAB_PATH
from pipeline.corpus.vocabulary import read_vocabulary
from pipeline.generation.decoding import SamplingSettings
from pipeline.generation.sampler import Sampler, make_sampler
from pipeline.lstm.builders import build_sequence_model, build_tutorial_model, model_shape
from pipeline.lstm.model import load_model

if TYPE_CHECKING:
    import keras

TEXT = (
    "fair is foul, and foul is fair: hover through the fog and filthy air. "
    "when shall we three meet again in thunder, lightning, or in rain? "
)
SETTINGS = SamplingSettings(temperature=1.0, seed=0)


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=MODEL_PATH, help="model")
    parser.add_argument("--vocab", type=Path, default=VOCAB_PATH, help="vocab")
    parser.add_argument("--length", type=int, default=2000, help="characters of one stream")
    parser.add_argument("--batch", type=int, default=64, help="samples of the batch")
    parser.add_argument("--batch-length", type=int, default=300, help="characters per sample")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--tutorial", action="store_true", help="also the tutorial's loop")
    parser.add_argument("--tutorial-chars", type=int, default=30, help="its characters")
    return parser.parse_args()


def load_or_build(model_path: Path, vocab_path: Path) -> tuple[keras.Model, list[str], str]:
    params = load_params()
    if vocab_path.is_file():
        vocabulary = read_vocabulary(vocab_path)
    else:
        vocabulary = sorted(set(params.validate_.allowed_chars.lower()))
    if model_path.is_file():
        return load_model(model_path), vocabulary, f"trained model {model_path}"
    if params.train.architecture == "tutorial":
        model = build_tutorial_model(len(vocabulary), 50, model_shape(params.train))
    else:
        model = build_sequence_model(len(vocabulary), model_shape(params.train))
    return model, vocabulary, f"NO trained model at {model_path}: default size, random weights"


def prompt_ids(vocabulary: list[str], length: int) -> list[int]:
    index = {char: position for position, char in enumerate(vocabulary)}
    known = [index[char] for char in TEXT if char in index] or [0]
    return (known * (length // len(known) + 1))[:length]


def tutorial_loop(model: keras.Model, ids: list[int], count: int, window: int) -> list[int]:
    """The tutorial's generation: re-read the whole window with `model.predict` per character."""
    rng = np.random.default_rng(0)
    ids = list(ids)
    vocab = int(model.output_shape[-1])
    tutorial = len(model.input_shape) == 3
    for _ in range(count):
        recent = np.array(ids[-window:], dtype=np.int32)[None]  # (1, window)
        if tutorial:
            scaled = recent[:, :, None].astype(np.float32) / vocab  # (1, window, 1)
            logits = model.predict(scaled, verbose=0)[0]  # (vocab,)
        else:
            logits = model.predict(recent, verbose=0)[0, -1]  # (vocab,) at the last position
        probabilities = np.exp(logits - logits.max())
        ids.append(int(rng.choice(vocab, p=probabilities / probabilities.sum())))
    return ids[-count:]


def report_tutorial(model: keras.Model, ids: list[int], count: int, window: int) -> float:
    tutorial_loop(model, ids, 3, window)  # warm-up: builds predict's function
    start = time.perf_counter()
    tutorial_loop(model, ids, count, window)
    rate = count / (time.perf_counter() - start)
    print(f"tutorial predict loop: {rate:10.1f} chars/s ({count} chars)")
    return rate


def bound_runs(model: keras.Model, chars: int) -> dict[str, object]:
    chain = matvec_chain(model)

    def limited(threads: int) -> object:
        def run() -> None:
            with threadpool_limits(limits=threads):
                chain(chars)

        return run

    return {"bound, 1 thread": limited(1), "bound, 2 threads": limited(2)}


def main() -> None:
    arguments = parse_arguments()
    model, vocabulary, source = load_or_build(arguments.model, arguments.vocab)
    window = int(model.input_shape[1] or load_params().encode.seq_len)
    ids = prompt_ids(vocabulary, window)
    prompt = "".join(vocabulary[i] for i in ids)
    print(f"{cpu_model()}; model: {source}; {model.count_params():,} parameters; window {window}")
    samplers: dict[str, Sampler] = {
        "former": FormerSampler(model, vocabulary),
        "new": make_sampler(model, vocabulary),
    }
    length, batch, batch_length = arguments.length, arguments.batch, arguments.batch_length
    runs: dict[str, object] = {}
    for name, sampler in samplers.items():
        for rows, chars in ((1, length), (batch, batch_length)):
            sampler.generate([prompt] * rows, chars, SETTINGS)  # compiles these shapes
            key = f"{name}, {'one stream' if rows == 1 else f'batch of {rows}'}"
            runs[key] = lambda s=sampler, r=rows, c=chars: s.generate([prompt] * r, c, SETTINGS)
    runs |= bound_runs(model, length)
    times = interleave(runs, arguments.rounds)  # type: ignore[arg-type]
    chars = {key: (batch * batch_length if "batch" in key else length) for key in runs}
    rate = {key: chars[key] / statistics.median(times[key]) for key in runs}
    print(f"characters per second, median of {arguments.rounds} interleaved rounds:")
    for key in runs:
        print(f"  {key:24s} {rate[key]:10.0f}")
    stream = median_ratio(times["former, one stream"], times["new, one stream"])
    batched = median_ratio(times[f"former, batch of {batch}"], times[f"new, batch of {batch}"])
    bound = [min(a, b) for a, b in zip(*(times[k] for k in bound_runs(model, 0)), strict=True)]
    of_bound = median_ratio(bound, times["new, one stream"])
    print(
        f"one stream: new / former {stream:.2f}x (target >= 1.6); new / bound {of_bound:.0%} "
        f"(target >= 50%; the bound: the faster of 1 and 2 threads per round)\n"
        f"batch of {batch}: new / former {batched:.2f}x (target >= 1.0)"
    )
    if arguments.tutorial:
        report_tutorial(model, ids, arguments.tutorial_chars, window)


if __name__ == "__main__":
    main()
