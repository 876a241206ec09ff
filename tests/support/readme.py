"""The README's code blocks, so that tests can run them as a reader would."""

from __future__ import annotations

import re

from tests.support.project import ROOT


def section_blocks(heading: str, language: str = "bash") -> list[str]:
    """The ```{language} blocks of the README section whose heading is `heading` (any level),
    up to the next heading of the same or a higher level, in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"^(#+) {re.escape(heading)}\n", text, flags=re.MULTILINE)
    assert match, f"README.md has no section {heading!r}"
    level = len(match.group(1))
    rest = text[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, flags=re.MULTILINE)
    body = rest[: end.start()] if end else rest
    return re.findall(rf"^```{language}\n(.*?)^```", body, flags=re.MULTILINE | re.DOTALL)
