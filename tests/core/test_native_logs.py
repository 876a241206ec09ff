"""pipeline/core/native_logs.py: TensorFlow's native log lines are dropped from stderr, everything
else passes unchanged, and CHARLSTM_DEBUG=1 keeps them all."""

import os
import sys

import pytest

from pipeline.core.native_logs import forward, is_native_line
from tests.support.project import ROOT, attempt, clean_environment, run_module

ONEDNN = (
    b"E0000 00:00:1796304657.621934   10000 util.cc:131] oneDNN supports DT_INT32 only on "
    b"platforms with AVX-512. Falling back to the default Eigen-based implementation if present."
)
FEATURES = (
    b"I0000 00:00:1796304837.204134   12004 cpu_feature_guard.cc:227] This TensorFlow binary is "
    b"optimized to use available CPU instructions in performance-critical operations."
)
FEATURES_2 = (
    b"To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild "
    b"TensorFlow with the appropriate compiler flags."
)
ANNOUNCEMENT = (
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
)


@pytest.mark.parametrize("line", [ONEDNN, FEATURES, FEATURES_2, ANNOUNCEMENT])
def test_abseil_lines_are_native(line):
    assert is_native_line(line)


@pytest.mark.parametrize(
    "line",
    [
        b"13:16:38 train: epoch 1/24: loss 2.7944, val_loss 2.3100",
        b"generate: error: prompt characters not in the model's vocabulary: '\xe2\x82\xac'",
        b"E0000 is how a play could start",
        b"Traceback (most recent call last):",
        b"",
    ],
)
def test_other_lines_are_not(line):
    assert not is_native_line(line)


def test_forward_drops_native_lines_and_keeps_the_rest_in_order(tmp_path):
    reader, writer = os.pipe()
    os.write(writer, b"first\n" + ONEDNN + b"\nsecond\n" + FEATURES + b"\n" + FEATURES_2)
    os.write(writer, b"\nlast line without newline")
    os.close(writer)
    with (tmp_path / "out").open("wb") as out:
        forward(reader, out.fileno())
    assert (tmp_path / "out").read_bytes() == b"first\nsecond\nlast line without newline"


SCRIPT = """
import logging, os, sys
from pipeline.core.cli import run_stage
from pipeline.core.errors import PipelineError

def main():
    os.write(2, NATIVE + b"\\n")  # as TensorFlow's C++ side writes: the descriptor, not sys.stderr
    logging.getLogger("pipeline").info("a stage's own log line")
    raise PipelineError("the one line a refusal prints")

run_stage("demo", main)
"""


@pytest.mark.parametrize("debug", ["", "1"])
def test_a_command_shows_its_own_lines_and_no_native_ones_unless_debugging(debug):
    code = f"NATIVE = {ONEDNN!r}\n{SCRIPT}"
    env = clean_environment(PYTHONPATH=str(ROOT), CHARLSTM_DEBUG=debug)
    result = attempt([sys.executable, "-c", code], ROOT, env, timeout=60)
    assert result.returncode == 1
    assert "a stage's own log line" in result.stderr
    if debug:
        assert "oneDNN supports DT_INT32" in result.stderr  # and the traceback, as asked
    else:
        assert "oneDNN" not in result.stderr
        assert result.stderr.splitlines()[-1] == "demo: error: the one line a refusal prints"


def test_a_stage_that_imports_tensorflow_at_the_top_prints_only_its_one_line(tmp_path):
    """`python -m pipeline.evaluate` imports TensorFlow before `run_stage` runs, and TensorFlow's
    import itself prints native lines: the filter starts with the package, under `-m`."""
    result = run_module("evaluate", cwd=tmp_path, env=clean_environment(PYTHONPATH=str(ROOT)))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "evaluate: error: params.yaml: params file not found (run from the repository root)"
    ]
