"""pipeline/core/cli.py: how every stage ends, as the user sees it (exit status and stderr)."""

import errno

import pytest

from pipeline.core.cli import run_stage
from pipeline.core.errors import PipelineError


def fails_with(error: BaseException):
    def main() -> None:
        raise error

    return main


def test_success_returns_quietly(capsys):
    assert run_stage("clean", lambda: None) is None
    assert capsys.readouterr().err == ""


def test_a_pipeline_error_is_one_line_and_exit_1(capsys):
    with pytest.raises(SystemExit) as stopped:
        run_stage("encode", fails_with(PipelineError("bad corpus\nsee line 3")))
    assert stopped.value.code == 1
    assert capsys.readouterr().err == "encode: error: bad corpus see line 3\n"


def test_an_os_error_names_the_file(capsys):
    full = OSError(errno.ENOSPC, "No space left on device", "data/encoded/train_ids.npy")
    with pytest.raises(SystemExit) as stopped:
        run_stage("encode", fails_with(full))
    assert stopped.value.code == 1
    expected = "encode: error: No space left on device: data/encoded/train_ids.npy\n"
    assert capsys.readouterr().err == expected


def test_an_interrupt_exits_130(capsys):
    with pytest.raises(SystemExit) as stopped:
        run_stage("train", fails_with(KeyboardInterrupt()))
    assert stopped.value.code == 130
    assert capsys.readouterr().err == "train: interrupted\n"


def test_charlstm_debug_shows_the_traceback_instead(monkeypatch, capsys):
    monkeypatch.setenv("CHARLSTM_DEBUG", "1")
    with pytest.raises(PipelineError, match="bad corpus"):
        run_stage("encode", fails_with(PipelineError("bad corpus")))
    assert capsys.readouterr().err == ""


def test_a_bug_is_not_dressed_up_as_a_user_error():
    with pytest.raises(ZeroDivisionError):
        run_stage("clean", fails_with(ZeroDivisionError("division by zero")))
