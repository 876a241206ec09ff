"""URL helpers shared by the stages that talk to servers (download, MLflow tracking)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """Hide any `user:password@` in a URL before it is logged or written to git."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return url if host == parts.netloc else urlunsplit(parts._replace(netloc=f"***@{host}"))
