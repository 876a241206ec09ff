"""URL helpers shared by the stages that talk to servers (download, MLflow tracking)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

# `scheme://user:password@`: everything between `//` and the last `@` before the path.
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^\s/?#'\"<>]*@")


def redact_url(url: str) -> str:
    """Hide any `user:password@` in a URL before it is logged or written to git."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return url if host == parts.netloc else urlunsplit(parts._replace(netloc=f"***@{host}"))


def redact_text(text: str) -> str:
    """Hide the `user:password@` of every URL inside a message (an error from a library, say)."""
    return _USERINFO.sub(r"\1***@", text)
