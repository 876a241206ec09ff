"""HTTP transport for the download stage: bounded, streamed GETs that say what went wrong.

Every body, a package index's project page included, is read by `fetch_http`: a size cap
(`download.max_bytes`), a timeout per socket read, a deadline for the whole source
(`download.total_timeout_s`, which also bounds the wait for the headers) and a minimum rate
(`download.min_bytes_per_s`), so neither a huge nor a trickling server can hold the stage.
Redirects may not downgrade HTTPS to plain HTTP. Every URL in a message is redacted (`user:token@`
hidden), since messages reach logs and `data/raw/source.json`.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from requests.exceptions import ChunkedEncodingError
from tqdm import tqdm
from urllib3.util.retry import Retry

from pipeline.core.config import DownloadParams
from pipeline.core.errors import DownloadError
from pipeline.core.urls import redact_text, redact_url

RETRY_STATUSES = (429, 500, 502, 503, 504)  # transient; a 404 will not change on retry
BACKOFF_FACTOR_S = 0.5  # urllib3 sleeps 0, 1, 2, 4 ... seconds before successive retries
HTTP_SCHEMES = ("http", "https")
CHUNK_BYTES = 64 * 1024
# The rate is judged over windows this long: a TCP retransmission or a busy server may pause a
# second or two, while a server sending a byte every half second is slow in every window.
RATE_WINDOW_S = 5.0


@dataclass(frozen=True)
class Fetched:
    """What one source served, where the bytes came from, and kind-specific provenance.

    `url` is the final URL after redirects and may carry credentials: redact it before it is
    logged or written.
    """

    data: bytes
    url: str
    content_type: str | None = None
    details: dict[str, str] = field(default_factory=dict)


class HttpStatusError(DownloadError):
    """The server answered with an HTTP error status (kept so a caller can tell 404 apart)."""

    def __init__(self, status: int, reason: str, url: str) -> None:
        super().__init__(f"HTTP {status} {reason} for {redact_url(url)}")
        self.status = status


class Deadline:
    """The time one source may take in all: its index page, redirects, retries and body."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends_at = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.ends_at - time.monotonic()

    def check(self, label: str) -> None:
        if self.remaining() <= 0:
            raise DownloadError(
                f"{label}: took longer than download.total_timeout_s={self.seconds:g}; stopped"
            )


def check_http_url(url: str) -> None:
    """Refuse anything but http(s) up front (params, or an index's link, may name another)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in HTTP_SCHEMES:
        raise DownloadError(
            f"unsupported URL scheme {scheme or '(none)'!r} in {redact_url(url)}: "
            "only http:// and https:// are fetched (use a `file` source for a local file)"
        )


def refuse_downgrade(response: requests.Response, *args: object, **kwargs: object) -> None:
    """A response hook: an HTTPS URL may not redirect to plain HTTP.

    Over plain HTTP the bytes (and any credentials in the URL) could be read or changed on the
    way; requests would follow such a redirect silently.
    """
    if not response.is_redirect:
        return
    target = urljoin(response.url, response.headers["location"])
    if urlsplit(response.url).scheme == "https" and urlsplit(target).scheme.lower() == "http":
        response.close()
        raise DownloadError(
            f"refused a redirect from HTTPS to plain HTTP: {redact_url(response.url)} -> "
            f"{redact_url(target)}"
        )


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
    session.hooks["response"].append(refuse_downgrade)
    # Identity encoding keeps the body byte-for-byte as stored, so Content-Length can be checked.
    session.headers.update({"User-Agent": "charlstm-download", "Accept-Encoding": "identity"})
    return session


def describe_request_error(error: Exception) -> str:
    """A short, redacted reason; urllib3 wraps a retried failure's last cause in `MaxRetryError`."""
    cause = error.args[0] if error.args else error
    reason = getattr(cause, "reason", None) or cause
    # NewConnectionError (DNS, refused) subclasses urllib3's TimeoutError, so test it first.
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        text = f"connection failed: {reason}"
    elif isinstance(error, requests.Timeout | urllib3.exceptions.TimeoutError) or isinstance(
        reason, urllib3.exceptions.TimeoutError
    ):
        text = f"timed out: {reason}"
    elif isinstance(error, ChunkedEncodingError | urllib3.exceptions.ProtocolError):
        text = f"truncated body (connection closed early): {reason}"
    elif isinstance(error, requests.TooManyRedirects):
        text = f"too many redirects: {error}"
    elif isinstance(error, requests.exceptions.InvalidSchema):  # a redirect to file:// or ftp://
        text = f"unsupported URL scheme (only http and https are fetched): {error}"
    else:
        text = f"request failed: {reason}"
    return redact_text(text)


def check_rate(received: int, seconds: float, min_bytes_per_s: float, label: str) -> None:
    if received < min_bytes_per_s * seconds:
        raise DownloadError(
            f"{label}: {received} bytes in {seconds:.1f} s, slower than "
            f"download.min_bytes_per_s={min_bytes_per_s:g}; stopped"
        )


def read_capped(
    response: requests.Response, settings: DownloadParams, label: str, deadline: Deadline
) -> bytes:
    """Stream a body, refusing more than `max_bytes`, a missed deadline or a trickle."""
    max_bytes = settings.max_bytes
    header = response.headers.get("Content-Length", "")
    declared = int(header) if header.isdigit() else None
    if declared is not None and declared > max_bytes:
        raise DownloadError(f"Content-Length {declared} is over download.max_bytes={max_bytes}")
    body = bytearray()
    window_start, window_bytes = time.monotonic(), 0
    with tqdm(total=declared, unit="B", unit_scale=True, desc=label, disable=None) as progress:
        # `read1` returns whatever has arrived (at most one chunk, decoded), where `read` would
        # wait for a whole chunk, so a trickle cannot hide inside one call.
        while chunk := response.raw.read1(CHUNK_BYTES, decode_content=True):
            body += chunk
            progress.update(len(chunk))
            if len(body) > max_bytes:
                raise DownloadError(f"body is over download.max_bytes={max_bytes}; stopped")
            deadline.check(label)
            window_bytes += len(chunk)
            elapsed = time.monotonic() - window_start
            if elapsed >= RATE_WINDOW_S:
                check_rate(window_bytes, elapsed, settings.min_bytes_per_s, label)
                window_start, window_bytes = time.monotonic(), 0
    # A body shorter than Content-Length needs no check here: urllib3 raises IncompleteRead.
    return bytes(body)


def get_by_deadline(
    session: requests.Session, url: str, deadline: Deadline, label: str, **options: Any
) -> requests.Response:
    """`session.get(url, stream=True)`, given up when the deadline passes before the headers.

    The read timeout restarts with every byte, so a server that sends its status line and headers
    a byte at a time would never time out. The request runs in a daemon thread, left behind at the
    deadline (the stage goes on to the next source, or exits); the body is read by the caller.
    """
    outcome: queue.Queue[requests.Response | Exception] = queue.Queue(maxsize=1)

    def request() -> None:
        try:
            outcome.put(session.get(url, stream=True, **options))
        except Exception as error:  # handed to the caller's thread, which raises it
            outcome.put(error)

    threading.Thread(target=request, name=f"GET {label}", daemon=True).start()
    try:
        result = outcome.get(timeout=max(deadline.remaining(), 0.0))
    except queue.Empty:
        raise DownloadError(
            f"{label}: no response within download.total_timeout_s={deadline.seconds:g}; stopped"
        ) from None
    if isinstance(result, Exception):
        raise result
    return result


def fetch_http(  # noqa: PLR0913, PLR0917
    session: requests.Session,
    url: str,
    settings: DownloadParams,
    label: str,
    deadline: Deadline,
    accept: str | None = None,
) -> Fetched:
    """GET `url` within the configured timeouts, deadline and size cap."""
    check_http_url(url)
    deadline.check(label)
    # No single wait may outlast the deadline (a read timeout of 30 s with 5 s left).
    timeout = (
        min(settings.connect_timeout_s, max(deadline.remaining(), 0.01)),
        min(settings.read_timeout_s, max(deadline.remaining(), 0.01)),
    )
    headers = {"Accept": accept} if accept else None
    try:
        response = get_by_deadline(session, url, deadline, label, timeout=timeout, headers=headers)
        with response:
            if response.status_code >= 400:
                raise HttpStatusError(response.status_code, response.reason, response.url)
            body = read_capped(response, settings, label, deadline)
            return Fetched(body, response.url, response.headers.get("Content-Type"))
    except (requests.RequestException, urllib3.exceptions.HTTPError) as error:
        raise DownloadError(describe_request_error(error)) from None
