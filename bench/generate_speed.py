"""Generation speed: the tutorial's per-character `model.predict` loop against the project's
compiled, stateful sampler, on one model in one run.

    python bench/generate_speed.py
    python bench/generate_speed.py --model /tmp/run1/models/model.keras \\
        --vocab /tmp/run1/data/encoded/vocab.json

Uses the trained model at `models/model.keras` (or `--model`); when there is none, it builds the
default-size model from `params.yaml` with random weights (the speed does not depend on the
weights). Measures generated characters per second for
  (a) the tutorial loop: one `model.predict` per character on the last `seq_len` ids, taking the
      last position's logits (the tutorial model: its 50-id scaled window);
  (b) the sampler, one sample;
  (c) the sampler, a batch of `--batch` samples (aggregate characters per second);
after a warm-up that traces every compiled function, so tracing is not timed. The sampler's
times include priming the `seq_len`-character prompt. Prints chars/s and the ratios b/a, c/a.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

# Run as a script from anywhere: the repository root holds the `pipeline` package, whose import
# also quiets TensorFlow's start-up logging (so it comes before TensorFlow's first import).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.core.params import load_params
from pipeline.core.paths import MODEL_PATH, VOCAB_PATH  # noqa: E402
from pipeline.corpus.vocabulary import read_vocabulary  # noqa: E402
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
    parser.add_argument("--tutorial-chars", type=int, default=30, help="characters for (a)")
    parser.add_argument("--length", type=int, default=1000, help="characters per sample, (b) (c)")
    parser.add_argument("--batch", type=int, default=64, help="samples in (c)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best counts")
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


def best_seconds(run: Callable[[], object], repeats: int) -> float:
    """The fastest of `repeats` runs: the least disturbed by other work on a shared machine."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_sampler(sampler: Sampler, prompt: str, length: int, batch: int, repeats: int) -> float:
    """Aggregate characters per second for `batch` samples of `length` characters."""
    prompts = [prompt] * batch
    sampler.generate(prompts, 2, SETTINGS)  # warm-up: traces this batch and prompt shape
    seconds = best_seconds(lambda: sampler.generate(prompts, length, SETTINGS), repeats)
    return batch * length / seconds


def main() -> None:
    arguments = parse_arguments()
    model, vocabulary, source = load_or_build(arguments.model, arguments.vocab)
    window = int(model.input_shape[1] or load_params().encode.seq_len)
    ids = prompt_ids(vocabulary, window)
    prompt = "".join(vocabulary[i] for i in ids)
    print(f"model: {source}; {model.count_params():,} parameters; window {window}")

    tutorial_loop(model, ids, 3, window)  # warm-up: builds predict's function
    count = arguments.tutorial_chars
    tutorial = count / best_seconds(
        lambda: tutorial_loop(model, ids, count, window), arguments.repeats
    )
    print(f"(a) tutorial predict loop   : {tutorial:10.1f} chars/s ({count} chars)")

    sampler = make_sampler(model, vocabulary)
    single = bench_sampler(sampler, prompt, arguments.length, 1, arguments.repeats)
    print(f"(b) sampler, 1 sample       : {single:10.1f} chars/s ({arguments.length} chars)")
    batched = bench_sampler(sampler, prompt, arguments.length, arguments.batch, arguments.repeats)
    label = f"(c) sampler, batch of {arguments.batch}"
    print(f"{label:<28}: {batched:10.1f} chars/s aggregate")
    print(
        f"b/a = {single / tutorial:.0f}x (target >= 300), c/a = {batched / tutorial:.0f}x "
        "(target >= 2000)"
    )


if __name__ == "__main__":
    main()
