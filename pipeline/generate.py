"""Generate text from the trained model, streaming it to the terminal as it is produced.

    python -m pipeline.generate --prompt "Fair is foul" --length 300
    charlstm-generate --prompt "Fair is foul" --temperature 0.8 --top-p 0.9 --num-samples 4
    charlstm-generate --prompt "Fair is foul" --model models:/charlstm-macbeth-generator@champion

Reads `models/model.keras` and `data/encoded/vocab.json` (both made by `dvc repro`; override with
`--model` and `--vocab`). `--model` also takes a registered model, `models:/<name>@<alias>` or
`models:/<name>/<version>`, from the MLflow store (`MLFLOW_TRACKING_URI`, else `mlflow.db`): a
`-generator` model carries its vocabulary, a plain Keras one takes `--vocab`.

The same seed and settings always give the same text. Letters the vocabulary lacks are
lower-cased (the default corpus is lower-cased); other unknown prompt characters are an error
that names them.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from pipeline.core.cli import run_stage
from pipeline.core.errors import PipelineError
from pipeline.core.paths import MODEL_PATH, VOCAB_FILE, VOCAB_PATH
from pipeline.corpus.vocabulary import read_vocabulary

MAX_LENGTH = 100_000
STREAM_CHUNK = 32  # characters per compiled call when streaming one sample


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="charlstm-generate",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,  # every option shows its default
    )
    parser.add_argument(  # SUPPRESS: a required option has no default to show
        "--prompt", required=True, default=argparse.SUPPRESS, help="text the generation continues"
    )
    parser.add_argument("--length", type=int, default=300, help="characters to generate")
    parser.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    parser.add_argument("--top-k", type=int, default=0, help="keep the k likeliest (0 = off)")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus mass in (0, 1]")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same text")
    parser.add_argument("--num-samples", type=int, default=1, help="continuations of the prompt")
    parser.add_argument(
        "--model",
        default=str(MODEL_PATH),
        help="a .keras file, or a registered model: models:/<name>@<alias> or "
        "models:/<name>/<version>",
    )
    parser.add_argument(
        "--vocab",
        type=Path,
        default=VOCAB_PATH,
        help="the encode stage's vocabulary (unused for a -generator model, which carries its own)",
    )
    return parser.parse_args(argv)


def check_request(arguments: argparse.Namespace) -> None:
    if not 1 <= arguments.length <= MAX_LENGTH:
        raise PipelineError(f"--length must be between 1 and {MAX_LENGTH}, got {arguments.length}")
    if not 1 <= arguments.num_samples <= 1024:
        count = arguments.num_samples
        raise PipelineError(f"--num-samples must be between 1 and 1024, got {count}")
    paths = [] if is_registered(arguments.model) else [arguments.model, arguments.vocab]
    for path in map(Path, paths):
        if not path.is_file():
            raise PipelineError(f"{path} not found; run `make repro` first or pass its path")


def is_registered(model: str) -> bool:
    return model.startswith("models:/")


def download_registered(uri: str, destination: Path, vocab: Path) -> tuple[Path, Path]:
    """A registered model from the MLflow store -> (its .keras file, its vocabulary): the
    generator's own vocabulary, else `vocab`."""
    import mlflow  # noqa: PLC0415 (only this path needs MLflow)

    from pipeline.core.urls import redact_text, redact_url  # noqa: PLC0415
    from pipeline.tracking.store import (  # noqa: PLC0415
        store_creation_lock,
        store_errors,
        tracking_uri,
    )

    # MLflow's INFO notes ("Creating initial database tables...") would land between the one
    # error line and the generated text on stderr; its warnings still show. urllib3's
    # "Retrying ..." warnings would add lines to a refusal that ends in one line anyway.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    store = tracking_uri()
    mlflow.set_tracking_uri(store)
    try:
        # A damaged or locked SQLite store is one line (`store_errors`), as for train.
        with store_errors(store), store_creation_lock(store):
            local = Path(
                mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(destination))
            )
    except mlflow.exceptions.MlflowException as error:
        # MLflow's reason quotes the store's URL, credentials and all: redacted like the rest.
        reason = error.message.splitlines()[0] if error.message else type(error).__name__
        raise PipelineError(
            f"cannot load {uri} from {redact_url(store)} ({redact_text(reason)}); check the "
            "name and alias or version in the MLflow UI, or set MLFLOW_TRACKING_URI"
        ) from None
    model = next(iter(sorted(local.rglob("*.keras"))), None)
    if model is None:
        raise PipelineError(f"{uri} holds no Keras model (.keras file); is it a charlstm model?")
    own_vocab = next(iter(sorted(local.rglob(VOCAB_FILE))), None)
    if own_vocab is None and not vocab.is_file():
        raise PipelineError(f"{uri} carries no vocabulary and {vocab} is missing; pass --vocab")
    return model, own_vocab or vocab


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    check_request(arguments)
    with tempfile.TemporaryDirectory(prefix="charlstm-model-") as scratch:
        if is_registered(arguments.model):
            arguments.model, arguments.vocab = download_registered(
                arguments.model, Path(scratch), arguments.vocab
            )
        generate(arguments)


def generate(arguments: argparse.Namespace) -> None:
    """Stream (one sample) or print (several) continuations of the prompt."""
    # Imported late so that argument errors answer at once, without loading TensorFlow.
    from pipeline.generation.decoding import SamplingSettings  # noqa: PLC0415
    from pipeline.generation.sampler import make_sampler  # noqa: PLC0415
    from pipeline.lstm.model import load_model  # noqa: PLC0415

    settings = SamplingSettings(
        temperature=arguments.temperature,
        top_k=arguments.top_k,
        top_p=arguments.top_p,
        seed=arguments.seed,
    )
    vocabulary = read_vocabulary(arguments.vocab)
    sampler = make_sampler(load_model(Path(arguments.model)), vocabulary)
    sampler.encode_prompt(arguments.prompt)  # a bad prompt fails before anything is printed
    prompts = [arguments.prompt] * arguments.num_samples
    if arguments.num_samples == 1:
        sys.stdout.write(arguments.prompt)
        for (piece,) in sampler.stream(prompts, arguments.length, settings, STREAM_CHUNK):
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        return
    for number, text in enumerate(sampler.generate(prompts, arguments.length, settings), 1):
        print(f"--- sample {number} ---\n{arguments.prompt}{text}\n")


def cli() -> None:
    run_stage("generate", main)


if __name__ == "__main__":
    cli()
