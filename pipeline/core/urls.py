"""URL helpers shared by the stages that talk to servers (download, MLflow tracking).

Credentials travel in two places of a URL: its userinfo (`https://user:token@host/`) and its
query (`?token=...`, `?X-Amz-Signature=...`). Both are hidden before a URL is logged, written to
git or printed in an error, whoever wrote the message (a library's reason text quotes URLs too).
"""

from __future__ import annotations

import logging
import re

HIDDEN = "***"
# `scheme://user:password@`: everything between `//` and the last `@` before the path.
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^\s/?#'\"<>]*@")
# A URL's (or an absolute path's) query inside a message: from its `?` to a fragment, a quote or
# white space, less trailing punctuation (`(see http://h/?a=b).` keeps its `).`).
_QUERY = re.compile(
    r"((?:[A-Za-z][A-Za-z0-9+.-]*:/)?/[^\s?#'\"<>]*\?)([^\s#'\"<>]*[^\s#'\"<>).,:;\]])"
)


def redact_query(query: str) -> str:
    """`a=1&token=s3cret` -> `a=***&token=***`: every value hidden, the names kept (they say
    what was sent); a bare part without `=` may itself be a token and is hidden whole."""
    parts = (part.partition("=") for part in query.split("&"))
    return "&".join(
        f"{name}={HIDDEN}" if separator else (HIDDEN if name else "")
        for name, separator, _ in parts
    )


def redact_url(url: str) -> str:
    """Hide any `user:password@` and every query value of a URL before it is logged or written.

    By string surgery, not `urlunsplit`, which would turn `sqlite:////abs/path` into
    `sqlite://abs/path`: everything but the secrets stays as written.
    """
    scheme, separator, rest = url.partition("://")
    if separator:
        end = min([rest.find(mark) for mark in "/?#" if mark in rest] or [len(rest)])
        if "@" in rest[:end]:
            rest = f"{HIDDEN}@{rest[:end].rpartition('@')[2]}{rest[end:]}"
        url = f"{scheme}{separator}{rest}"
    head, question, query = url.partition("?")
    if not question:
        return url
    query, hash_mark, fragment = query.partition("#")
    return f"{head}?{redact_query(query)}{hash_mark}{fragment}"


def redact_text(text: str) -> str:
    """Hide the userinfo and the query values of every URL inside a message, and the query of
    a bare path (`url: /api/2.0/...?token=...`, as urllib3 reports a failed request)."""
    text = _USERINFO.sub(rf"\1{HIDDEN}@", text)
    return _QUERY.sub(lambda match: match[1] + redact_query(match[2]), text)


class RedactingFormatter(logging.Formatter):
    """A log formatter that passes every formatted record, traceback included, through
    `redact_text`: a URL logged by any module or library loses its credentials."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))
