"""pipeline/tracking/registry.py: when a new version becomes champion."""

import math

import pytest

from pipeline.tracking import registry


@pytest.mark.parametrize(
    ("candidate", "champion", "expected"),
    [
        (2.0, None, True),  # no champion yet
        (2.0, 2.5, True),
        (2.5, 2.5, False),  # a tie keeps the champion
        (3.0, 2.5, False),
        (2.0, math.nan, True),  # the champion's run lacks the metric
        (math.nan, 2.5, False),
        (math.inf, None, False),  # a diverged run never becomes champion
    ],
)
def test_beats_champion(candidate, champion, expected):
    assert registry.beats_champion(candidate, champion) is expected
