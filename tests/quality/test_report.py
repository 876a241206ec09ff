"""The validation report: one self-contained, escaped, bounded HTML page, even for a hostile
corpus; checked as parsed HTML and, where Chromium is installed, rendered offline by it."""

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pipeline.quality.report import MAX_VALUE_CHARS, render_report
from tests.support.project import copy_project, run_module, tiny_params

SCENE = (
    "first witch.\nwhen shall we three meet again\nin thunder, lightning, or in rain?\n\n"
    "macbeth.\nso foul and fair a day i have not seen.\n"
)
HOSTILE_LINES = (
    "<script>document.title = 'pwned'</script>",
    '<img src="http://attacker.invalid/x.png" onerror="alert(1)">',
    '<a href="https://attacker.invalid/">click</a><style>body{display:none}</style>',
    "\"'><svg onload=alert(2)>",
)
# Every tag and attribute the report itself uses; anything else came from the corpus.
OWN_TAGS = {
    "html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "code",
    "table", "tbody", "tr", "th", "td", "span", "ul", "li", "br",
}  # fmt: skip
OWN_ATTRIBUTES = {"lang", "charset", "http-equiv", "content", "class"}


class Markup(HTMLParser):
    """Collects the tags and attribute names of a page, and the text of its title."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes |= {name for name, _ in attrs}
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


def check_structure(page: str) -> Markup:
    """Only the report's own elements and attributes: nothing from the corpus became markup."""
    markup = Markup()
    markup.feed(page)
    assert markup.tags <= OWN_TAGS, markup.tags - OWN_TAGS
    assert markup.attributes <= OWN_ATTRIBUTES, markup.attributes - OWN_ATTRIBUTES
    assert markup.title == "Corpus validation report"
    return markup


def check_report_is_inert(page: str) -> Markup:
    """The page as written: its structure, and no tag or remote reference in its source text."""
    markup = check_structure(page)
    lowered = page.lower()
    for needle in ("<script", "<img", "<svg", "<a ", "url("):
        assert needle not in lowered, needle
    # A remote reference needs a real quote or none before the URL; escaped text has `&quot;`.
    assert not re.search(r"(src|href|action)\s*=\s*[\"']?\s*(https?:)?//", lowered)
    return markup


def test_values_are_escaped_and_cut():
    summary = {
        "success": False,
        "failed_expectations": 1,
        "statistics": {"longest_line": 10_000_000},
        "expectations": [
            {
                "type": "expect_column_values_to_not_match_regex",
                "table": "lines",
                "column": "text",
                "kwargs": {"regex": "<[^>]+>"},
                "success": False,
                "unexpected_count": 5,
                "unexpected_examples": [*HOSTILE_LINES, "x" * 1_000_000],
                "notes": "no HTML <b>markup</b>",
            }
        ],
    }
    page = render_report(summary)
    check_report_is_inert(page)
    assert "&lt;script&gt;document.title = &#x27;pwned&#x27;&lt;/script&gt;" in page
    assert f"{'x' * MAX_VALUE_CHARS}... ({1_000_000 - MAX_VALUE_CHARS} more characters)" in page
    assert len(page) < 20_000


def run_validate(project: Path) -> subprocess.CompletedProcess[str]:
    return run_module("validate", cwd=project, timeout=300)


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory) -> Path:
    """The validate stage run on a corpus with script tags, event handlers, remote URLs and a
    10 MB line; returns the report it wrote (the suite fails, the report is still written)."""
    project = tmp_path_factory.mktemp("hostile")
    params = tiny_params(validate={"min_chars": 100, "max_chars": 20_000_000})
    copy_project(project, params, extras=())
    corpus = project / "data" / "clean" / "corpus.txt"
    corpus.parent.mkdir(parents=True)
    lines = [*HOSTILE_LINES, "<b>" * 3_000_000 + "x" * 1_000_000]  # 10 MB on one line
    corpus.write_text(SCENE * 5 + "\n".join(lines) + "\n", encoding="utf-8")
    result = run_validate(project)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "no HTML markup (lines.text)" in result.stderr
    return project / "reports" / "validation" / "index.html"


def test_the_stage_writes_an_inert_bounded_report_for_a_hostile_corpus(hostile_report):
    page = hostile_report.read_text(encoding="utf-8")
    check_report_is_inert(page)
    assert len(page.encode()) < 50_000
    assert "FAIL" in page and "PASS" in page
    assert "no HTML markup" in page and "&lt;script&gt;" in page
    summary = json.loads((hostile_report.parents[1] / "validation.json").read_text())
    assert page.count("<tr>") >= len(summary["expectations"]) + len(summary["statistics"])
    assert [path.name for path in hostile_report.parent.iterdir()] == ["index.html"]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_chromium_renders_the_report_offline_without_running_corpus_scripts(hostile_report):
    """Headless Chromium with every network request sent to a closed port: the page renders
    with its content, and the corpus' `document.title = 'pwned'` never runs."""
    assert CHROMIUM is not None
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",  # running as root in a container
            "--disable-gpu",
            "--proxy-server=127.0.0.1:9",  # nothing listens: any fetch would fail
            "--dump-dom",
            hostile_report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    # The DOM as Chromium built it: its serialisation writes quotes in text unescaped, so only
    # the structure is compared (every element and attribute is the report's own).
    markup = check_structure(result.stdout)
    assert "tbody" in markup.tags or "table" in markup.tags
    assert "expectations passed" in result.stdout
    assert "no HTML markup" in result.stdout
