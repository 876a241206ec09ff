"""pipeline/train.py's own pieces: precision choice, divergence check, history CSV.

The modules train wires together have their own test files (test_data, test_model,
test_checkpoints, test_tracking, test_distribute)."""

import math

import pytest

from pipeline.errors import PipelineError
from pipeline.train import check_finite, choose_precision, history_csv


@pytest.mark.parametrize(
    ("requested", "capabilities", "expected"),
    [
        ("auto", [], "float32"),  # CPU
        ("auto", [(9, 0)], "mixed_bfloat16"),  # H100
        ("auto", [(8, 0), (8, 6)], "mixed_bfloat16"),  # A100 + A40
        ("auto", [(7, 5)], "mixed_float16"),  # T4
        ("auto", [(8, 0), (7, 0)], "mixed_float16"),  # the oldest GPU decides
        ("auto", [(6, 1)], "float32"),  # GTX 1080: no tensor cores
        ("mixed_float16", [], "mixed_float16"),  # an explicit choice always wins
    ],
)
def test_choose_precision(requested, capabilities, expected):
    assert choose_precision(requested, capabilities) == expected


def test_check_finite_names_the_metric_and_the_fix():
    check_finite({"loss": [3.0, 2.5], "val_loss": [3.1, 2.6]})
    with pytest.raises(
        PipelineError, match=r"training diverged: loss became nan at epoch 2; lower"
    ):
        check_finite({"loss": [3.0, math.nan]})


def test_history_csv_numbers_epochs_from_one():
    text = history_csv({"val_loss": [2.5, 2.25], "loss": [3.0, 2.0]})
    assert text == "epoch,loss,val_loss\n1,3.000000,2.500000\n2,2.000000,2.250000\n"
