"""Local servers for the tests: free ports on 127.0.0.1 and waiting for a server to answer."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_http(url: str, process: subprocess.Popen[bytes], timeout_s: float = 90) -> None:
    """Poll `url` until it answers (any HTTP status); fail early if `process` exits."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answered, if only to refuse
        except OSError:
            assert process.poll() is None, f"the server for {url} exited ({process.returncode})"
            assert time.monotonic() < deadline, f"{url} did not answer in {timeout_s} s"
            time.sleep(0.5)


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports on 127.0.0.1 (all bound at once, then released)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


# --- a real HTTP server on 127.0.0.1 with canned routes ------------------------------------------

# How a route answers one request.
Handler = Callable[[BaseHTTPRequestHandler], None]


def reply(
    status: int, body: bytes = b"", content_type: str = "text/plain", **headers: str
) -> Handler:
    """A route answering `status` with `body`; `length=` overrides Content-Length (to lie)."""

    def handle(request: BaseHTTPRequestHandler) -> None:
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        extra = dict(headers)
        request.send_header("Content-Length", extra.pop("length", str(len(body))))
        for name, value in extra.items():
            request.send_header(name.replace("_", "-"), value)
        request.end_headers()
        request.wfile.write(body)

    return handle


class LocalServer(ThreadingHTTPServer):
    """Answers each GET path from `routes` (404 otherwise) and counts the requests in `hits`."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), RequestHandler)
        self.hits: Counter[str] = Counter()
        self.routes: dict[str, Handler] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class RequestHandler(BaseHTTPRequestHandler):
    server: LocalServer

    def do_GET(self) -> None:
        self.server.hits[self.path] += 1
        route = self.server.routes.get(self.path, reply(404, b"not found"))
        route(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output quiet


@contextlib.contextmanager
def serve(routes: dict[str, Handler] | None = None) -> Iterator[LocalServer]:
    """A real HTTP server on 127.0.0.1 answering `routes`, stopped on exit.

    Routes may be added to `server.routes` once it runs (e.g. one that reads `server.hits`).
    """
    server = LocalServer()
    server.routes = dict(routes or {})
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
