"""pipeline/lstm/hardware.py: which precision `auto` resolves to on each kind of device."""

import pytest

from pipeline.lstm.hardware import choose_precision


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
