"""The validation report as one self-contained HTML page: `render_report(summary) -> str`.

It replaces Great Expectations' Data Docs, which load scripts, styles and a logo from the
network (blank offline and in MLflow's sandboxed artifact viewer) and embed corpus lines as raw
HTML (a line `<script>...` in the corpus ran when the page was opened). This page has inline
styles only, no script and no URL; a Content-Security-Policy forbids loading anything, and every
value taken from the corpus or the results is HTML-escaped and cut to `MAX_VALUE_CHARS`, so the
page stays a few kilobytes whatever the corpus holds.

The input is the JSON summary that the validate stage writes (`reports/validation.json`).
"""

from __future__ import annotations

import html
import json
from typing import Any

MAX_VALUE_CHARS = 200
MAX_EXAMPLES = 5

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
code { font: 12px monospace; white-space: pre-wrap; word-break: break-all; }
.pass { color: #11692b; font-weight: bold; }
.fail { color: #b00020; font-weight: bold; }
"""
# Nothing may be fetched or run: styles inline, no scripts, no images, no frames, no forms.
CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'none'; base-uri 'none'"


def text(value: Any) -> str:
    """Any value as escaped, bounded HTML text (strings as they are, the rest as JSON)."""
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    if len(value) > MAX_VALUE_CHARS:
        value = value[:MAX_VALUE_CHARS] + f"... ({len(value) - MAX_VALUE_CHARS} more characters)"
    return html.escape(value, quote=True)


def status(success: bool) -> str:
    return '<span class="pass">PASS</span>' if success else '<span class="fail">FAIL</span>'


def render_observed(expectation: dict[str, Any]) -> str:
    """What the check saw: an error, the count and examples of bad rows, or a measured value."""
    if expectation.get("error"):
        return f"raised: <code>{text(expectation['error'])}</code>"
    if expectation.get("unexpected_count") is not None:
        examples = list(expectation.get("unexpected_examples") or [])[:MAX_EXAMPLES]
        items = "".join(f"<li><code>{text(example)}</code></li>" for example in examples)
        listed = f"<ul>{items}</ul>" if items else ""
        return f"{text(expectation['unexpected_count'])} unexpected{listed}"
    return f"<code>{text(expectation.get('observed_value'))}</code>"


def render_expectation(expectation: dict[str, Any]) -> str:
    target = expectation.get("table", "")
    if expectation.get("column"):
        target = f"{target}.{expectation['column']}"
    settings = "<br>".join(
        f"{text(key)}: <code>{text(value)}</code>"
        for key, value in sorted((expectation.get("kwargs") or {}).items())
    )
    cells = (
        status(bool(expectation.get("success"))),
        text(expectation.get("notes") or ""),
        f"<code>{text(expectation.get('type', ''))}</code>",
        text(target),
        settings,
        render_observed(expectation),
    )
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def render_report(summary: dict[str, Any]) -> str:
    """The whole page for one validation summary (see `validate.summarise_validation`)."""
    expectations = list(summary.get("expectations") or [])
    statistics = summary.get("statistics") or {}
    failed = summary.get("failed_expectations", 0)
    headline = (
        f"{status(bool(summary.get('success')))} {text(len(expectations) - failed)} of "
        f"{text(len(expectations))} expectations passed"
    )
    statistic_rows = "".join(
        f"<tr><th>{text(name)}</th><td>{text(value)}</td></tr>"
        for name, value in sorted(statistics.items())
    )
    expectation_rows = "".join(render_expectation(item) for item in expectations)
    header = "".join(
        f"<th>{name}</th>"
        for name in ("result", "check", "expectation", "on", "settings", "observed")
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>Corpus validation report</title>
<style>{STYLE}</style>
</head>
<body>
<h1>Corpus validation report</h1>
<p>{headline}. Written by <code>python -m pipeline.validate</code> from
<code>data/clean/corpus.txt</code>; the same results are in
<code>reports/validation.json</code>.</p>
<h2>Expectations</h2>
<table><tr>{header}</tr>{expectation_rows}</table>
<h2>Corpus statistics</h2>
<table>{statistic_rows}</table>
</body>
</html>
"""
