"""SIGTERM and SIGINT as an `Interrupted` exception, held back while a checkpoint is written."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType


class SignalGuard:
    """Turns SIGTERM/SIGINT into `Interrupted`, held back while a `critical()` block runs."""

    def __init__(self) -> None:
        self._critical = 0
        self._pending: int | None = None
        self._fired = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._fired:
            return  # already stopping: let the cleanup (ending the MLflow run) finish
        if self._critical:
            self._pending = signum
            return
        self._fired = True
        raise Interrupted(signum)

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        self._critical += 1
        try:
            yield
        finally:
            self._critical -= 1
        if not self._critical and self._pending is not None and not self._fired:
            self._fired = True
            raise Interrupted(self._pending)

    @contextlib.contextmanager
    def installed(self) -> Iterator[SignalGuard]:
        signals = (signal.SIGTERM, signal.SIGINT)
        previous = {sig: signal.signal(sig, self._handle) for sig in signals}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class Interrupted(KeyboardInterrupt):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signal_name = signal.Signals(signum).name
