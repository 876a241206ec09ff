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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pipeline import files
from pipeline.cli import run_stage
from pipeline.config import EncodeParams, load_params
from pipeline.errors import PipelineError
from pipeline.paths import (
    CLEAN_CORPUS,
    CLEAN_EXTRA,
    ENCODED_DIR,
    VOCAB_FILE,
    WINDOWS_FILE,
    ids_file,
)
from pipeline.validation_gate import require_passed_validation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WindowSpec:
    seq_len: int
    stride: int
    train_chars: int
    val_chars: int
    test_chars: int
    train_windows: int
    val_windows: int
    test_windows: int
    vocab_size: int
    # Leading characters of `train_ids.npy` that are extra text (with its blank-line separator),
    # not the corpus; 0 without `download.extra_members`.
    extra_chars: int = 0


def build_vocabulary(text: str, extra: str = "") -> list[str]:
    """The sorted distinct characters of `text` and `extra`; a character's id is its index."""
    return sorted(set(text) | set(extra))


def encode_text(text: str, vocabulary: list[str]) -> np.ndarray:
    """Map each character to its id (uint8 for up to 256 symbols, else uint16)."""
    index = {char: position for position, char in enumerate(vocabulary)}
    unknown = sorted(set(text) - index.keys())
    if unknown:
        raise PipelineError(f"characters not in the vocabulary: {''.join(unknown)!r}")
    dtype = np.uint8 if len(vocabulary) <= 256 else np.uint16
    if not vocabulary or max(map(ord, vocabulary)) > 0xFF:  # beyond Latin-1: one by one
        return np.fromiter((index[char] for char in text), dtype=dtype, count=len(text))
    # Every character fits in one Latin-1 byte: map the bytes through a 256-entry table in numpy
    # (about 20x faster than the per-character lookup on a 100 MB corpus).
    table = np.zeros(256, dtype=dtype)
    table[[ord(char) for char in vocabulary]] = np.arange(len(vocabulary), dtype=dtype)
    return table[np.frombuffer(text.encode("latin-1"), dtype=np.uint8)]


def decode_ids(ids: np.ndarray, vocabulary: list[str]) -> str:
    return "".join(vocabulary[int(i)] for i in ids)


def count_windows(length: int, seq_len: int, stride: int) -> int:
    """Windows of `seq_len` inputs plus one shifted target that fit in `length` characters."""
    span = seq_len + 1
    return 0 if length < span else (length - span) // stride + 1


def window_starts(length: int, seq_len: int, stride: int) -> np.ndarray:
    """Start offsets of every window: `ids[s : s + seq_len + 1]` is one (inputs, targets) pair."""
    return np.arange(count_windows(length, seq_len, stride), dtype=np.int64) * stride


def split_points(length: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """Where validation and test begin in a text of `length` characters."""
    val_cut = int(round(length * (1 - val_fraction - test_fraction)))
    test_cut = int(round(length * (1 - test_fraction)))
    return val_cut, test_cut


def split_ids(
    ids: np.ndarray, val_fraction: float, test_fraction: float, seq_len: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contiguous split by position: train, then validation (`val_fraction` of the text), then
    test (the last `test_fraction`)."""
    val_cut, test_cut = split_points(len(ids), val_fraction, test_fraction)
    parts = {"training": ids[:val_cut], "validation": ids[val_cut:test_cut], "test": ids[test_cut:]}
    for name, part in parts.items():
        if len(part) < seq_len + 1:
            raise PipelineError(
                f"the {name} split has {len(part)} characters, fewer than one window "
                f"(seq_len + 1 = {seq_len + 1}); use a longer corpus, a smaller encode.seq_len "
                "or other encode.val_fraction / encode.test_fraction"
            )
    train, val, test = (part.copy() for part in parts.values())
    return train, val, test


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
