"""Tests for `pipeline/sources/transport.py`: bounded GETs against a real HTTP server on
127.0.0.1."""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from pipeline.core.config import DownloadParams
from pipeline.core.errors import DownloadError
from pipeline.sources.transport import (
    Deadline,
    HttpStatusError,
    check_http_url,
    check_rate,
    fetch_http,
    open_session,
)
from tests.support.params import committed
from tests.support.servers import reply, serve

BODY = b"Fair is foul, and foul is fair\n" * 100


def settings(**overrides: Any) -> DownloadParams:
    source = {"name": "web", "kind": "http", "sha256": None, "url": "http://127.0.0.1/"}
    return committed(DownloadParams, sources=[source], retries=0, read_timeout_s=5.0, **overrides)


def test_a_deadline_runs_out() -> None:
    deadline = Deadline(0.05)
    deadline.check("page")  # still time left
    time.sleep(0.1)
    assert deadline.remaining() < 0
    with pytest.raises(DownloadError, match=r"page: took longer than .*total_timeout_s=0.05"):
        deadline.check("page")


def test_check_rate_refuses_a_trickle_only() -> None:
    check_rate(5000, 5.0, 1000, "x")
    with pytest.raises(DownloadError, match=r"x: 10 bytes in 5\.0 s, slower than .*=1000"):
        check_rate(10, 5.0, 1000, "x")
    check_rate(0, 5.0, 0, "x")  # 0 = no floor


@pytest.mark.parametrize("url", ["ftp://host/a", "file:///etc/passwd", "host/a.txt"])
def test_check_http_url_refuses_other_schemes(url: str) -> None:
    with pytest.raises(DownloadError, match="unsupported URL scheme"):
        check_http_url(url)


def test_fetch_http_follows_a_redirect_and_reports_the_final_url() -> None:
    routes = {"/a": reply(302, b"", Location="/b"), "/b": reply(200, BODY, "text/plain")}
    with serve(routes) as server, open_session(0) as session:
        fetched = fetch_http(session, f"{server.url}/a", settings(), "a", Deadline(10))
    assert fetched.data == BODY
    assert fetched.url == f"{server.url}/b"
    assert fetched.content_type == "text/plain"


def test_fetch_http_keeps_the_status_and_redacts_the_url() -> None:
    with serve({}) as server, open_session(0) as session:
        url = server.url.replace("http://", "http://user:secret@") + "/missing"
        with pytest.raises(
            HttpStatusError, match=r"HTTP 404 Not Found for http://\*\*\*@"
        ) as error:
            fetch_http(session, url, settings(), "missing", Deadline(10))
    assert error.value.status == 404
    assert "secret" not in str(error.value)


def drip(request: BaseHTTPRequestHandler) -> None:
    """A byte every 0.1 s: quick enough for any read timeout, never done."""
    request.send_response(200)
    request.send_header("Content-Length", "100000")
    request.end_headers()
    try:
        for _ in range(100_000):
            request.wfile.write(b"a")
            request.wfile.flush()
            time.sleep(0.1)
    except OSError:
        pass


def test_fetch_http_stops_at_the_deadline() -> None:
    with serve({"/drip": drip}) as server, open_session(0) as session:
        started = time.monotonic()
        with pytest.raises(DownloadError, match="drip: took longer than download.total_time"):
            fetch_http(
                session, f"{server.url}/drip", settings(min_bytes_per_s=0), "drip", Deadline(1)
            )
    assert time.monotonic() - started < 5
