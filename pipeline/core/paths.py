"""Every file and folder the stages read and write, relative to the repository root.

The one home of artifact paths: `dvc.yaml`'s `deps` and `outs` spell the same paths, and
tests/test_stages.py checks that each stage writes exactly what dvc.yaml declares. Nothing but
`pathlib` here, so any module (the served generator included) can import it for free.
"""

from __future__ import annotations

from pathlib import Path

# download -> clean
RAW_DIR = Path("data/raw")
RAW_CORPUS = RAW_DIR / "corpus.txt"
RAW_SOURCE = RAW_DIR / "source.json"  # provenance: which source and URL served the corpus
RAW_EXTRA = RAW_DIR / "extra.txt"  # download.extra_members joined; empty when there are none
CLEAN_DIR = Path("data/clean")
CLEAN_CORPUS = CLEAN_DIR / "corpus.txt"
CLEAN_EXTRA = CLEAN_DIR / "extra.txt"  # extra training text, cleaned like the corpus

# encode: one folder, written as a whole; the file names inside it
ENCODED_DIR = Path("data/encoded")
VOCAB_FILE = "vocab.json"  # {"chars": [...]}: the characters in id order
WINDOWS_FILE = "windows.json"  # the window settings and split sizes (encode.WindowSpec)
VOCAB_PATH = ENCODED_DIR / VOCAB_FILE


def ids_file(split: str) -> str:
    """`train_ids.npy`, `val_ids.npy` or `test_ids.npy`: one split's uint8 ids."""
    return f"{split}_ids.npy"


# train
MODELS_DIR = Path("models")
MODEL_PATH = MODELS_DIR / "model.keras"
CHECKPOINT_DIR = MODELS_DIR / ".checkpoints" / "train"  # removed when training succeeds

# reports: metrics, plots and the validation report
REPORTS_DIR = Path("reports")
CLEAN_STATS_PATH = REPORTS_DIR / "clean.json"
VALIDATION_DOCS_DIR = REPORTS_DIR / "validation"  # index.html, the self-contained report
VALIDATION_SUMMARY_PATH = REPORTS_DIR / "validation.json"
BASELINE_PATH = REPORTS_DIR / "baseline.json"
HISTORY_PATH = REPORTS_DIR / "train_history.csv"
METRICS_PATH = REPORTS_DIR / "metrics.json"
SAMPLING_PATH = REPORTS_DIR / "sampling.csv"
SAMPLES_PATH = REPORTS_DIR / "samples.md"
