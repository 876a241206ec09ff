"""Atomic writes: a crash or a full disk never leaves a half-written output behind.

Each writer writes a temporary file in the destination folder, flushes it to disk, then renames it
over the destination (a rename within one file system is atomic on POSIX).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np


@contextlib.contextmanager
def atomic_path(destination: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to `destination`; rename it into place on success only."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=f".tmp{suffix}", dir=destination.parent
    )
    os.close(handle)
    os.chmod(name, 0o644)  # mkstemp creates 0600; outputs should read like ordinary files
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_directory(destination: Path) -> Iterator[Path]:
    """Yield an empty folder next to `destination`; it replaces `destination` only on success.

    Two renames, so a crash leaves the old folder, the new one or none, never a mix of both.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(
        tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent)
    )
    os.chmod(temporary, 0o755)
    retired = temporary.with_suffix(".old")
    try:
        yield temporary
        if destination.exists():
            os.replace(destination, retired)
        os.replace(temporary, destination)
    finally:
        for leftover in (temporary, retired):
            if leftover.exists():
                shutil.rmtree(leftover)


@contextlib.contextmanager
def atomic_open(destination: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file for writing; it replaces `destination` only if the block succeeds."""
    encoding = None if "b" in mode else "utf-8"
    with atomic_path(destination) as temporary, temporary.open(mode, encoding=encoding) as stream:
        yield stream
        stream.flush()
        os.fsync(stream.fileno())


def write_text(destination: Path, text: str) -> None:
    with atomic_open(destination, "w") as stream:
        stream.write(text)


def write_bytes(destination: Path, data: bytes) -> None:
    with atomic_open(destination, "wb") as stream:
        stream.write(data)


def write_json(destination: Path, payload: Any) -> None:
    write_text(destination, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def save_array(destination: Path, array: np.ndarray) -> None:
    with atomic_open(destination, "wb") as stream:
        np.save(stream, array, allow_pickle=False)


def load_array(source: Path) -> np.ndarray:
    """Load a `.npy` file without ever unpickling (object arrays are refused)."""
    return np.load(source, allow_pickle=False)


def read_json(source: Path) -> Any:
    with source.open(encoding="utf-8") as stream:
        return json.load(stream)
