"""Stage 4, encode: clean text -> integer ids, a vocabulary and a train/validation/test split.

Reads `data/clean/corpus.txt`, `data/clean/extra.txt` (extra training text, often empty) and the
`encode` params; writes to `data/encoded/`:
- `vocab.json`: the characters in id order (sorted, so the map is stable for a given corpus);
- `train_ids.npy`, `val_ids.npy`, `test_ids.npy`: one small integer per character, split
  contiguously by position: the last `test_fraction` of the corpus is the test text, the
  `val_fraction` before it validates, the rest trains (so no window crosses a split). Validation
  drives early stopping and every choice; test is scored once, by evaluate. The extra text only
  trains: it comes first in `train_ids.npy`, so the corpus's training part still runs straight
  into validation, and it is refused if it holds the held-out text (`find_leaked_lines`).
- `windows.json`: `seq_len`, `stride` and the window counts that training and evaluation use.
Run with `python -m pipeline.encode`.

Windows are never materialised here: training slices them on the fly from the id arrays, so
memory stays proportional to the corpus (a one-hot tensor would be `vocab_size` times larger).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np

from pipeline.core import files
from pipeline.core.cli import run_stage
from pipeline.core.config import EncodeParams
from pipeline.core.errors import PipelineError
from pipeline.core.params import load_params
from pipeline.core.paths import (
    CLEAN_CORPUS,
    CLEAN_EXTRA,
    ENCODED_DIR,
    VOCAB_FILE,
    WINDOWS_FILE,
    ids_file,
)
from pipeline.corpus.vocabulary import build_vocabulary, encode_text
from pipeline.corpus.windows import WindowSpec, count_windows, split_ids, split_points
from pipeline.quality.gate import require_passed_validation

log = logging.getLogger(__name__)


# Held-out lines at least this long (stripped) are looked up in the extra text: shorter ones
# ("enter macbeth.", "exeunt.") recur across plays by themselves.
LEAK_MIN_LINE_CHARS = 40
# More than this share of them found verbatim means the extra text holds the held-out play.
LEAK_MAX_SHARE = 0.01


def find_leaked_lines(held_out: str, extra: str) -> tuple[list[str], int]:
    """The held-out lines of `LEAK_MIN_LINE_CHARS`+ characters found verbatim (stripped) among
    the extra text's lines, and how many such held-out lines there are."""
    candidates = [line.strip() for line in held_out.split("\n")]
    candidates = [line for line in candidates if len(line) >= LEAK_MIN_LINE_CHARS]
    extra_lines = {line.strip() for line in extra.split("\n")}  # a set: one pass over 5 MB
    return [line for line in candidates if line in extra_lines], len(candidates)


def check_no_leak(held_out: str, extra: str) -> None:
    """Refuse extra training text that holds the held-out text (e.g. another edition of it)."""
    leaked, total = find_leaked_lines(held_out, extra)
    if total and len(leaked) > LEAK_MAX_SHARE * total:
        raise PipelineError(
            f"{len(leaked)} of the {total} long validation and test lines occur in the extra "
            f"text (e.g. {leaked[0]!r}): it holds the held-out play, perhaps another edition "
            "of it; exclude that member from download.extra_members"
        )


def encode_corpus(
    text: str, params: EncodeParams, extra: str = ""
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, WindowSpec]:
    """Encode and split the corpus; the extra text (if any) is put before its training part."""
    if extra:
        val_cut, _ = split_points(len(text), params.val_fraction, params.test_fraction)
        check_no_leak(text[val_cut:], extra)
        extra += "\n\n"  # a paragraph break before the corpus's own training text
    vocabulary = build_vocabulary(text, extra)
    ids = encode_text(text, vocabulary)
    train, val, test = split_ids(ids, params.val_fraction, params.test_fraction, params.seq_len)
    if extra:
        train = np.concatenate([encode_text(extra, vocabulary), train])
    spec = WindowSpec(
        seq_len=params.seq_len,
        stride=params.stride,
        train_chars=len(train),
        val_chars=len(val),
        test_chars=len(test),
        train_windows=count_windows(len(train), params.seq_len, params.stride),
        val_windows=count_windows(len(val), params.seq_len, params.seq_len),
        test_windows=count_windows(len(test), params.seq_len, params.seq_len),
        vocab_size=len(vocabulary),
        extra_chars=len(extra),
    )
    return vocabulary, train, val, test, spec


def read_clean_corpus(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise PipelineError(
            f"{path}: not valid UTF-8 at byte {error.start}; re-run `dvc repro clean`"
        ) from None


def read_clean_extra(path: Path) -> str:
    """The clean extra text, or "" when the file is absent (a corpus cleaned by hand, stage by
    stage, has none; `dvc repro`'s clean always writes one)."""
    return read_clean_corpus(path) if path.exists() else ""


def main() -> None:
    params = load_params().encode
    require_passed_validation()
    text = read_clean_corpus(CLEAN_CORPUS)
    extra = read_clean_extra(CLEAN_EXTRA)
    vocabulary, train, val, test, spec = encode_corpus(text, params, extra)
    with files.atomic_directory(ENCODED_DIR) as folder:  # all five files, or the old folder
        files.save_array(folder / ids_file("train"), train)
        files.save_array(folder / ids_file("val"), val)
        files.save_array(folder / ids_file("test"), test)
        files.write_json(folder / VOCAB_FILE, {"chars": vocabulary})
        files.write_json(folder / WINDOWS_FILE, asdict(spec))
    log.info(
        "vocabulary %d; characters: %d training (%d of them extra), %d validation, %d test",
        spec.vocab_size,
        spec.train_chars,
        spec.extra_chars,
        spec.val_chars,
        spec.test_chars,
    )


if __name__ == "__main__":
    run_stage("encode", main)
