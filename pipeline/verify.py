"""Did this machine reproduce the committed results? A short summary after `dvc repro`.

    python -m pipeline.verify        # `make repro` runs it after `dvc repro`

Reads `dvc.lock`, `params.yaml` and `reports/metrics.json` in the working tree and the same
files at git's HEAD; writes nothing. It says which tracked outputs are byte for byte the
commit's and which differ, and for the model puts the headline metrics beside the committed
ones with a verdict: identical; differs within the cross-machine tolerance; or differs beyond it
(investigate). Then what to do next. It always exits 0: it reports, it does not judge a run.

Why a model can differ: TensorFlow's CPU kernels (oneDNN, Eigen) choose their code by instruction
set and cache size and promise bitwise-identical results only on the same CPU kind and thread
count. The data stages are plain Python and NumPy and match on every machine. The tolerance,
`TOLERANCE_BPC`, is about twice the largest difference measured between two CPU kinds: the
default model retrained on an Intel Xeon with AVX-512 (2026-12-03) moved the headline bits/char
by at most 0.0055 against an AMD EPYC without AVX-512; the committed one (from that Xeon)
retrained on an AMD EPYC with AVX512-BF16 (2026-12-04) by -0.0040 (test, continuous), -0.0057
(test, windowed), -0.0102 (validation, continuous) and -0.0094 (validation, windowed).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
from typing import Any

import yaml

from pipeline.core import files
from pipeline.core.cli import run_stage
from pipeline.core.metrics import flatten_metrics
from pipeline.core.paths import METRICS_PATH, MODEL_PATH

TOLERANCE_BPC = 0.02
HEADLINE = ("test.bpc", "test.bpc_windowed", "val.bpc", "val.bpc_windowed", "margin_bpc")
WIDTH = 110  # the report fits a 120-column terminal
KEEP_YOURS = "git add dvc.lock reports/metrics.json reports/sampling.csv && git commit"


def committed_text(path: str) -> str | None:
    """`path` as git's HEAD holds it; None outside a repository or when HEAD has no such file."""
    shown = subprocess.run(
        ["git", "show", f"HEAD:{path}"], capture_output=True, text=True, check=False
    )
    return shown.stdout if shown.returncode == 0 else None


def lock_outputs(lock_text: str) -> dict[str, str]:
    """{output path: md5} of every stage's outputs in a `dvc.lock`."""
    lock = yaml.safe_load(lock_text) or {}
    return {
        out["path"]: str(out.get("md5", ""))
        for stage in (lock.get("stages") or {}).values()
        for out in stage.get("outs") or []
    }


def compare_outputs(committed: dict[str, str], current: dict[str, str]) -> dict[str, list[str]]:
    """Outputs by verdict: `identical`, `differs`, `new` (not in the commit), `missing`."""
    verdicts: dict[str, list[str]] = {"identical": [], "differs": [], "new": [], "missing": []}
    for path in sorted(committed.keys() | current.keys()):
        if path not in current:
            verdicts["missing"].append(path)
        elif path not in committed:
            verdicts["new"].append(path)
        else:
            same = committed[path] == current[path]
            verdicts["identical" if same else "differs"].append(path)
    return verdicts


Row = tuple[str, float, float]  # a metric's name, its committed value, this run's


def metric_rows(committed: dict[str, Any], current: dict[str, Any]) -> list[Row]:
    """(name, committed, this run) for each headline metric both files hold."""
    old, new = flatten_metrics(committed), flatten_metrics(current)
    return [(name, old[name], new[name]) for name in HEADLINE if name in old and name in new]


def model_verdict(rows: list[Row], tolerance: float) -> str:
    if not rows:
        return (
            "no headline metrics to compare (reports/metrics.json is missing, here or at HEAD, "
            "or holds none of their names)"
        )
    largest = max(abs(new - old) for _, old, new in rows)
    if all(old == new for _, old, new in rows):
        return "the same numbers as the commit (the file's bytes differ)"
    if largest <= tolerance:
        return f"differs within the cross-machine tolerance ({tolerance} bits/char)"
    return f"differs beyond the cross-machine tolerance ({tolerance} bits/char): investigate"


def metric_table(rows: list[Row]) -> list[str]:
    lines = [f"  {'metric':<18} {'commit':>8} {'this run':>9} {'delta':>8}"]
    lines += [f"  {name:<18} {old:8.4f} {new:9.4f} {new - old:+8.4f}" for name, old, new in rows]
    return lines


def summary(verdicts: dict[str, list[str]], rows: list[Row], params_changed: bool) -> list[str]:
    """The report, line by line (see the module docstring)."""
    lines = [f"{name}: {', '.join(paths)}" for name, paths in verdicts.items() if paths]
    if params_changed:
        return [*lines, "params.yaml differs from the commit: different outputs are expected"]
    if not verdicts["differs"] and not verdicts["new"] and not verdicts["missing"]:
        return [*lines, "every output is byte for byte the commit's"]
    if MODEL_PATH.as_posix() in verdicts["differs"]:
        lines.append(f"model: {model_verdict(rows, TOLERANCE_BPC)}")
        lines += metric_table(rows) if rows else []
        lines.append(
            "  TensorFlow's CPU kernels give the same bytes only on the same CPU kind and thread "
            "count (`python -m pipeline.verify --help` says more)"
        )
    lines.append(
        f"next: keep this machine's results as your baseline ({KEEP_YOURS}), or return to the "
        "commit's records (git checkout -- dvc.lock reports/)"
    )
    return lines


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(
        prog="python -m pipeline.verify",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).parse_args(argv)
    committed_lock = committed_text("dvc.lock")
    if committed_lock is None:
        sys.stdout.write("reproduction: no committed dvc.lock to compare with\n")
        return
    with open("dvc.lock", encoding="utf-8") as stream:
        current = lock_outputs(stream.read())
    verdicts = compare_outputs(lock_outputs(committed_lock), current)
    committed_metrics = committed_text(METRICS_PATH.as_posix())
    rows = []
    if committed_metrics is not None and METRICS_PATH.is_file():
        rows = metric_rows(yaml.safe_load(committed_metrics), files.read_json(METRICS_PATH))
    with open("params.yaml", encoding="utf-8") as stream:
        params_changed = stream.read() != (committed_text("params.yaml") or "")
    report = ["reproduction against the commit:"]
    for line in summary(verdicts, rows, params_changed):
        indent = "  " + " " * (len(line) - len(line.lstrip()))
        report += textwrap.wrap(line, WIDTH, initial_indent="  ", subsequent_indent=indent + "  ")
    sys.stdout.write("\n".join(report) + "\n")


if __name__ == "__main__":
    run_stage("verify", main)
