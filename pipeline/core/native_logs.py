"""TensorFlow's native log lines kept off the user's terminal.

TensorFlow's C++ side logs through Abseil, which writes every message logged before its own
initialisation straight to file descriptor 2 whatever `TF_CPP_MIN_LOG_LEVEL` says (TensorFlow 2.21
announces this with "All log messages before absl::InitializeLog() is called are written to
STDERR"). On AVX-512 CPUs that includes an ERROR-level oneDNN notice at the first integer op,
which lands in the middle of generated text. `filtered_stderr()` puts a pipe behind descriptor 2
for the duration of a command and forwards every line except those in Abseil's format
(`E0000 00:00:1796304657.621934   10000 util.cc:131] ...`, and the second line of its CPU-feature
notice) and that announcement; Python's own
messages (logging, the one-line errors) pass unchanged. `CHARLSTM_DEBUG=1` keeps everything.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator

# Abseil's prefix (severity, date, time as seconds, thread, file:line), its announcement, and the
# second line of TensorFlow's CPU-feature notice.
NATIVE_LINE = re.compile(
    rb"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.-]+:\d+\] |"
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called|"
    rb"To enable the following instructions: .* rebuild TensorFlow with)"
)
DRAIN_TIMEOUT_S = 2.0  # a child process that inherited the pipe may keep it open


def is_native_line(line: bytes) -> bool:
    return NATIVE_LINE.match(line) is not None


def forward(reader: int, writer: int) -> None:
    """Copy lines from `reader` to `writer`, dropping native log lines, until end of file."""
    pending = b""
    with os.fdopen(reader, "rb", buffering=0) as stream:
        while chunk := stream.read(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            kept = b"".join(line + b"\n" for line in lines if not is_native_line(line))
            if kept:
                os.write(writer, kept)
    if pending and not is_native_line(pending):
        os.write(writer, pending)


class _Filter:
    """The pipe behind descriptor 2 and the thread that forwards what passes."""

    def __init__(self) -> None:
        sys.stderr.flush()
        self.original = os.dup(2)
        reader, writer = os.pipe()
        os.dup2(writer, 2)
        os.close(writer)
        self.thread = threading.Thread(target=forward, args=(reader, self.original), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        sys.stderr.flush()
        os.dup2(self.original, 2)  # closes the pipe's last writer of ours: the thread sees the end
        self.thread.join(DRAIN_TIMEOUT_S)
        os.close(self.original)


_process_filter: _Filter | None = None


def debugging() -> bool:
    return os.environ.get("CHARLSTM_DEBUG", "") not in ("", "0")


def filter_process_stderr() -> None:
    """Filter descriptor 2 from now until the process exits: `pipeline/__init__.py` calls this
    under `python -m pipeline.<command>`, before a stage's module-level TensorFlow import."""
    global _process_filter  # noqa: PLW0603 (one filter per process, stopped at exit)
    if _process_filter is None and not debugging():
        _process_filter = _Filter()
        atexit.register(_process_filter.stop)  # a traceback printed at exit still drains


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Descriptor 2 without native log lines while the block runs (see the module docstring);
    nothing more to do where the whole process is filtered already."""
    if debugging() or _process_filter is not None:
        yield
        return
    block_filter = _Filter()
    try:
        yield
    finally:
        block_filter.stop()
