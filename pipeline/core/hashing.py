"""Content hashes (sha256) of a file and of a folder's names and bytes: how a run names the data and
the model it used."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pipeline.core.paths import ENCODED_DIR


def hash_folder(folder: Path = ENCODED_DIR) -> str:
    """sha256 over the names and bytes of every file in `folder`, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        update_from_file(digest, path)
    return digest.hexdigest()


def hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    update_from_file(digest, path)
    return digest.hexdigest()


def update_from_file(digest: hashlib._Hash, path: Path) -> None:
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
