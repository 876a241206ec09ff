"""Run a sweep: queue every point of `sweeps/<name>.yaml` as a DVC experiment, run them two at a
time, wait, and say how to rank them.

    python -m pipeline.sweep defaults          # or: make sweep SWEEP=defaults
    python -m pipeline.compare --sweep defaults   # ranked by validation bits per character

A sweep file lists params overrides, either every combination of a `grid` or a list of `points`:

    grid:
      train.dropout: [0.3, 0.5]
      train.units: [256, 384]
    jobs: 2            # experiments run at once (default 2)

Each point becomes `dvc exp run --queue -S key=value ... -S mlflow.sweep=<name>`, so its MLflow
run carries the tag `sweep=<name>`; `dvc queue start -j <jobs>` then runs them. Every override is
checked against params.yaml's schema before anything is queued.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.core.cli import run_stage
from pipeline.core.errors import ConfigError, PipelineError
from pipeline.core.params import (
    PARAMS_PATH,
    describe_validation_error,
    parse_params,
    read_params_text,
)

SWEEPS_DIR = Path("sweeps")
POLL_SECONDS = 10

Scalar = str | int | float | bool
log = logging.getLogger(__name__)


class SweepFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    grid: dict[str, Annotated[list[Scalar], Field(min_length=1, max_length=100)]] = {}
    points: Annotated[list[dict[str, Scalar]], Field(max_length=1000)] = []
    jobs: Annotated[int, Field(ge=1, le=16)] = 2

    @model_validator(mode="after")
    def _one_kind(self) -> SweepFile:
        if bool(self.grid) == bool(self.points):
            raise ValueError("give either `grid` or `points`, not both and not neither")
        return self


def expand(sweep: SweepFile) -> list[dict[str, Scalar]]:
    """Every point of the sweep: the grid's combinations in file order, or the listed points."""
    if sweep.points:
        return list(sweep.points)
    keys = list(sweep.grid)
    return [
        dict(zip(keys, values, strict=True)) for values in itertools.product(*sweep.grid.values())
    ]


def apply_overrides(params: dict, point: dict[str, Scalar]) -> dict:
    """A copy of the raw params mapping with the dotted keys of `point` set."""
    result = yaml.safe_load(yaml.safe_dump(params))  # a deep copy of plain data
    for dotted, value in point.items():
        *sections, leaf = dotted.split(".")
        target = result
        for section in sections:
            target = target.get(section) if isinstance(target, dict) else None
            if not isinstance(target, dict):
                raise ConfigError(f"sweep key {dotted}: no such params section")
        if leaf not in target:
            raise ConfigError(f"sweep key {dotted}: not a key of {PARAMS_PATH}")
        target[leaf] = value
    return result


def load_sweep(name: str, params_text: str) -> tuple[SweepFile, list[dict[str, Scalar]]]:
    """The sweep file and its points, each point checked against the params schema."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", name):
        raise PipelineError(f"sweep name {name!r}: use letters, digits, '-' and '_'")
    path = SWEEPS_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SWEEPS_DIR.glob("*.yaml"))) or "none"
        raise PipelineError(f"{path}: no such sweep (sweeps here: {known})")
    try:
        sweep = SweepFile.model_validate(yaml.safe_load(read_params_text(path)))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}".replace("\n", " ")) from None
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error, str(path))) from None
    base = yaml.safe_load(params_text)
    points = expand(sweep)
    for point in points:
        parse_params(apply_overrides(base, point), f"{path} point {point}")
    return sweep, points


def dvc(*args: str) -> str:
    """Run `dvc ARGS` (the one on PATH, as DVC's own queue workers do); its output, or one line."""
    result = subprocess.run(["dvc", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or ["failed"]
        raise PipelineError(f"`dvc {' '.join(args)}` failed: {last[0]}")
    return result.stdout


def queue_point(name: str, point: dict[str, Scalar]) -> None:
    overrides = [
        f"{key}={str(value).lower() if isinstance(value, bool) else value}"
        for key, value in point.items()
    ]
    dvc(
        "exp",
        "run",
        "--queue",
        *itertools.chain.from_iterable(("-S", o) for o in overrides),
        "-S",
        f"mlflow.sweep={name}",
    )


def wait_for_queue(total: int) -> str:
    """Poll `dvc queue status` until nothing is queued or running; log progress."""
    while True:
        status = dvc("queue", "status")
        pending = status.count("Queued") + status.count("Running")
        log.info("%d of %d experiments finished", total - min(pending, total), total)
        if pending == 0:
            return status
        time.sleep(POLL_SECONDS)


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.sweep", description=__doc__.split("\n")[0]
    )
    parser.add_argument("name", help="the sweep file sweeps/NAME.yaml")
    parser.add_argument("--no-wait", action="store_true", help="queue and start, then return")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_arguments()
    sweep, points = load_sweep(args.name, read_params_text(PARAMS_PATH))
    # The stages every point shares, once, here: run by parallel queue workers, each would write
    # the same outputs into the shared DVC cache at the same moment, and one of them fails.
    log.info("the shared stages first: dvc repro baseline")
    dvc("repro", "baseline")
    for number, point in enumerate(points, 1):
        log.info("queueing %d/%d: %s", number, len(points), point)
        queue_point(args.name, point)
    dvc("queue", "start", "-j", str(sweep.jobs))
    if args.no_wait:
        return
    status = wait_for_queue(len(points))
    failed = status.count("Failed")
    log.info("rank them: python -m pipeline.compare --sweep %s", args.name)
    if failed:
        raise PipelineError(f"{failed} of {len(points)} experiments failed: see `dvc queue logs`")
    sys.stdout.write(status)


if __name__ == "__main__":
    run_stage("sweep", main)
