"""pipeline/lstm/signals.py: a signal during a checkpoint write waits for the write."""

import os
import signal

import pytest

from pipeline.lstm import signals


def test_a_signal_waits_for_the_checkpoint_write_to_finish():
    guard = signals.SignalGuard()
    written = []
    with guard.installed(), pytest.raises(signals.Interrupted, match="SIGTERM"):
        with guard.critical():
            os.kill(os.getpid(), signal.SIGTERM)
            written.append("checkpoint")  # still runs: the signal is held back
    assert written == ["checkpoint"]
    with signals.SignalGuard().installed(), pytest.raises(KeyboardInterrupt, match="SIGINT"):
        os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers restored
