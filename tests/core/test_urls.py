"""Tests for `pipeline/core/urls.py`: credentials never survive into a logged or written URL."""

from pipeline.core.urls import redact_text, redact_url


def test_redact_url_hides_user_and_password() -> None:
    assert (
        redact_url("https://user:secret@host.example/simple/") == "https://***@host.example/simple/"
    )
    assert redact_url("https://token@host.example/") == "https://***@host.example/"
    assert redact_url("https://host.example/simple/") == "https://host.example/simple/"


def test_redact_text_hides_every_url_in_a_message() -> None:
    message = (
        "401 Client Error for url: https://user:s3cret@index.example/simple/x/; "
        "retried http://a:b@c:8080/d (pass@word in a query stays: http://h/?q=a@b)"
    )
    redacted = redact_text(message)
    assert "s3cret" not in redacted
    assert "a:b@" not in redacted
    assert redacted.count("***@") == 2
    assert "http://h/?q=a@b" in redacted
