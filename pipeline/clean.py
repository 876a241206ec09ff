"""Stage 2, clean: raw corpus -> normalised text the model can learn from.

Reads `data/raw/corpus.txt`, `data/raw/extra.txt` and the `clean` params; writes
`data/clean/corpus.txt`, `data/clean/extra.txt` (the extra training text, cleaned by the same rules;
empty stays empty) and a small statistics report `reports/clean.json`. Run with
`python -m pipeline.clean`.

Steps, each a pure function: strip the Project Gutenberg header and footer when present, normalise
line endings and Unicode (NFKC, curly quotes and dashes to ASCII), optionally lowercase (as the
tutorial does), trim trailing spaces and squeeze runs of blank lines. A text longer than
`clean.max_chars` after normalisation (which can multiply it) is refused.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

from pipeline.core import files
from pipeline.core.cli import run_stage
from pipeline.core.errors import PipelineError
from pipeline.core.params import load_params
from pipeline.core.paths import CLEAN_CORPUS, CLEAN_EXTRA, CLEAN_STATS_PATH, RAW_CORPUS, RAW_EXTRA
from pipeline.corpus.cleaning import clean_extra_text, clean_text

log = logging.getLogger(__name__)


def read_extra_text(path: Path) -> str:
    """The raw extra text, or "" when the file is absent: a corpus placed by hand and cleaned
    stage by stage has none (`dvc repro`'s download always writes one)."""
    if not path.exists():
        return ""
    return decode_corpus(path.read_bytes(), str(path))


def decode_corpus(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PipelineError(
            f"{where}: not valid UTF-8 at byte {error.start}; re-download or convert it to UTF-8"
        ) from None


def main() -> None:
    params = load_params().clean
    raw = decode_corpus(RAW_CORPUS.read_bytes(), str(RAW_CORPUS))
    text, stats = clean_text(raw, params)
    extra = clean_extra_text(read_extra_text(RAW_EXTRA), params)
    files.write_text(CLEAN_CORPUS, text)
    files.write_text(CLEAN_EXTRA, extra)
    files.write_json(CLEAN_STATS_PATH, {**asdict(stats), "extra_chars": len(extra)})
    log.info(
        "%d -> %d characters, vocabulary %d", stats.raw_chars, stats.clean_chars, stats.vocab_size
    )


if __name__ == "__main__":
    run_stage("clean", main)
