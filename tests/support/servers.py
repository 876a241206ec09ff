"""Local servers for the tests: free ports on 127.0.0.1 and waiting for a server to answer."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request


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
