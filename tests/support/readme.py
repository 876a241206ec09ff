"""The code blocks of README.md and of the pages in docs/, so that tests can run them as a reader
would: `doc_pages()` (the README first, then the pages by name), `page_blocks(page)` (every
block with its section and marker) and `section_blocks(page, heading)` (one section's blocks)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tests.support.project import ROOT


def doc_pages() -> list[str]:
    """README.md, then every docs/*.md by name: the order in which the README test reads them."""
    return [
        "README.md",
        *sorted(path.relative_to(ROOT).as_posix() for path in ROOT.glob("docs/*.md")),
    ]


def read_page(page: str) -> str:
    return (ROOT / page).read_text(encoding="utf-8")


def section_blocks(page: str, heading: str, language: str = "bash") -> list[str]:
    """The ```{language} blocks of the section of `page` whose heading is `heading` (any level),
    up to the next heading of the same or a higher level, in order."""
    text = read_page(page)
    match = re.search(rf"^(#+) {re.escape(heading)}\n", text, flags=re.MULTILINE)
    assert match, f"{page} has no section {heading!r}"
    level = len(match.group(1))
    rest = text[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, flags=re.MULTILINE)
    body = rest[: end.start()] if end else rest
    return re.findall(rf"^```{language}\n(.*?)^```", body, flags=re.MULTILINE | re.DOTALL)


# A comment on the line right above a block's fence says how the README test treats it:
#   <!-- readme-test: skip (why) -->           cannot run here (a GPU, a cloud bucket, two hosts)
#   <!-- readme-test: run by PATH (why) -->    another test file or .ci/run runs it for real
#   <!-- readme-test: server PORT -->          starts a server on PORT that the next blocks use
MARKER = re.compile(r"^<!-- readme-test: (?P<directive>.*?) -->$")


@dataclass(frozen=True)
class Block:
    """One fenced block of a page."""

    page: str  # "README.md" or "docs/<name>.md"
    line: int  # 1-based line of its opening fence
    section: str  # the nearest heading above it
    language: str
    code: str
    marker: str  # the readme-test directive above it, "" for none

    @property
    def label(self) -> str:
        return f"{self.page}:L{self.line}-{self.section}"


def page_blocks(page: str, languages: tuple[str, ...] = ("bash", "python")) -> list[Block]:
    """Every fenced block of `page` in `languages`, in order, with its section and marker."""
    return readme_blocks(read_page(page), languages, page)


def readme_blocks(
    text: str, languages: tuple[str, ...] = ("bash", "python"), page: str = "README.md"
) -> list[Block]:
    """Every fenced block of `text` in `languages`, in order, with its section and marker."""
    blocks: list[Block] = []
    lines = text.splitlines()
    section, index = "", 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("#") and not blocks_open(lines, index):
            section = line.lstrip("#").strip()
        fence = re.match(r"^```(\w*)\s*$", line)
        if not fence:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        marker = MARKER.match(lines[index - 1]) if index else None
        if fence.group(1) in languages:
            code = "\n".join(lines[index + 1 : end]) + "\n"
            directive = marker.group("directive") if marker else ""
            blocks.append(Block(page, index + 1, section, fence.group(1), code, directive))
        index = end + 1
    return blocks


def blocks_open(lines: list[str], index: int) -> bool:
    """Whether line `index` lies inside a fenced block (a `#` comment there is no heading)."""
    return sum(1 for line in lines[:index] if line.startswith("```")) % 2 == 1
