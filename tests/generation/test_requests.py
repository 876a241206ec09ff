"""pipeline/generation/requests.py: request params, time budgets and the bounds on work, checked
before any work."""

import pytest

from pipeline.core.errors import PipelineError
from pipeline.generation.decoding import SamplingSettings
from pipeline.generation.requests import (
    MAX_PROMPT_CHARS,
    MAX_ROWS,
    MAX_WORK,
    MAX_WORK_IN_FLIGHT,
    ServerBusy,
    WorkInFlight,
    budget_from_params,
    check_work,
    request_work,
    settings_from_params,
)


@pytest.mark.parametrize(
    ("rows", "prompt_length", "length", "message"),
    [
        (1, MAX_PROMPT_CHARS + 1, 1, f"a prompt has {MAX_PROMPT_CHARS + 1} characters; at most"),
        (MAX_ROWS + 1, 1, 1, f"between 1 and {MAX_ROWS} prompts, got {MAX_ROWS + 1}"),
        (MAX_ROWS, 1, MAX_WORK // MAX_ROWS, f"characters of work; at most {MAX_WORK}"),
    ],
)
def test_check_work_refuses_oversized_requests(rows, prompt_length, length, message):
    with pytest.raises(PipelineError, match=message):
        check_work(["a" * prompt_length] * rows, length)


def test_check_work_accepts_the_largest_request():
    check_work(["a" * 999] * 1000, 1)


def test_budget_from_params():
    assert budget_from_params(None, 50.0) == 50.0
    assert budget_from_params({"timeout_s": 2.5}, 50.0) == 2.5
    assert budget_from_params({"timeout_s": 500.0}, 50.0) == 50.0
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(PipelineError, match="timeout_s must be a finite number"):
            budget_from_params({"timeout_s": bad}, 50.0)


def test_settings_from_params():
    assert settings_from_params(None) == (200, SamplingSettings(temperature=0.8))
    length, settings = settings_from_params({"length": 5, "top_k": 3, "top_p": 0.5, "seed": 9})
    assert (length, settings) == (5, SamplingSettings(0.8, top_k=3, top_p=0.5, seed=9))
    with pytest.raises(PipelineError, match="length must be between 1 and 100000, got 100001"):
        settings_from_params({"length": 100_001})


def test_request_work_counts_rows_times_longest_prompt_plus_length():
    assert request_work(["ab", "abcd"], 10) == 2 * (4 + 10)


def test_work_in_flight_admits_up_to_its_limit_and_refuses_the_rest_at_once():
    in_flight = WorkInFlight()
    assert in_flight.limit == MAX_WORK_IN_FLIGHT >= 2 * MAX_WORK  # two of the biggest side by side
    with in_flight.admit(MAX_WORK), in_flight.admit(MAX_WORK):
        with in_flight.admit(MAX_WORK_IN_FLIGHT - 2 * MAX_WORK):  # a normal request beside them
            assert in_flight.used == MAX_WORK_IN_FLIGHT
        with pytest.raises(ServerBusy, match=r"the server is busy: 2000000 characters of work in"):
            with in_flight.admit(MAX_WORK):
                pass
        assert in_flight.used == 2 * MAX_WORK  # a refusal holds nothing
    assert in_flight.used == 0


def test_work_in_flight_is_released_when_the_work_fails():
    in_flight = WorkInFlight(limit=10)
    with pytest.raises(RuntimeError), in_flight.admit(10):
        raise RuntimeError("generation failed")
    with in_flight.admit(10):
        assert in_flight.used == 10
