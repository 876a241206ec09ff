"""Tests for `pipeline/core/urls.py`: credentials never survive into a logged or written URL."""

import logging

from pipeline.core.urls import RedactingFormatter, redact_text, redact_url


def test_redact_url_hides_user_and_password() -> None:
    assert (
        redact_url("https://user:secret@host.example/simple/") == "https://***@host.example/simple/"
    )
    assert redact_url("https://token@host.example/") == "https://***@host.example/"
    assert redact_url("https://host.example/simple/") == "https://host.example/simple/"


def test_redact_url_hides_every_query_value_and_keeps_the_fragment() -> None:
    assert (
        redact_url("https://h.example/f.tar.gz?token=s3cret&x=1#sha256=ab")
        == "https://h.example/f.tar.gz?token=***&x=***#sha256=ab"
    )
    assert redact_url("https://h.example/f?s3cret") == "https://h.example/f?***"


def test_redact_text_hides_every_url_in_a_message() -> None:
    message = (
        "401 Client Error for url: https://user:s3cret@index.example/simple/x/; "
        "retried http://a:b@c:8080/d (a token in a query: http://h/?q=a@b&token=t0k3n)"
    )
    redacted = redact_text(message)
    assert "s3cret" not in redacted
    assert "a:b@" not in redacted
    assert "t0k3n" not in redacted and "a@b" not in redacted
    assert redacted.count("***@") == 2
    assert "http://h/?q=***&token=***" in redacted


def test_redact_text_leaves_text_without_urls_alone() -> None:
    message = "sha256 mismatch: got 00ff, params pin ab12 (user@example.org, a=b?c)"
    assert redact_text(message) == message


def test_the_log_formatter_redacts_every_record() -> None:
    record = logging.LogRecord(
        "mlflow", logging.WARNING, __file__, 1, "retrying %s", ("http://u:pw@h/?k=v",), None
    )
    assert RedactingFormatter("%(message)s").format(record) == "retrying http://***@h/?k=***"


def test_redact_url_keeps_everything_but_the_secrets_as_written() -> None:
    assert (
        redact_url("sqlite:////tmp/x/mlflow.db?timeout=60")
        == "sqlite:////tmp/x/mlflow.db?timeout=***"
    )
    assert redact_url("http://u:p@w@h:5000/a?b") == "http://***@h:5000/a?***"
    assert redact_url("file.txt") == "file.txt"


def test_redact_text_hides_the_query_of_a_bare_path() -> None:
    message = "Max retries exceeded with url: /?token=abc/api/2.0/x?name=m (Caused by ...)"
    assert "abc" not in redact_text(message)


def test_redact_text_keeps_the_punctuation_after_a_url() -> None:
    message = "web (http http://h/x.txt?token=t0k3n): HTTP 404 (see http://h/?a=b)."
    assert (
        redact_text(message)
        == "web (http http://h/x.txt?token=***): HTTP 404 (see http://h/?a=***)."
    )
