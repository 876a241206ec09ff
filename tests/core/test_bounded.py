"""Tests for `pipeline/core/bounded.py`: hostile files are refused within bounds, in one reason."""

from __future__ import annotations

import json
import os
import time
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.bounded import (
    MAX_JSON_DEPTH,
    BoundsError,
    check_zip_members,
    parse_json,
    read_capped,
    read_json,
    read_zip_json,
)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_parse_json_reads_plain_json() -> None:
    assert parse_json(b'{"chars": ["a", "\\u00e9"]}') == {"chars": ["a", "é"]}
    assert parse_json(nested(MAX_JSON_DEPTH)) == json.loads(nested(MAX_JSON_DEPTH))


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (nested(MAX_JSON_DEPTH + 1), f"nested deeper than {MAX_JSON_DEPTH} levels"),
        ('{"a": ' * 200_000 + "1" + "}" * 200_000, "nested deeper than"),
        (b"\xff\xfe{\x00}\x00", "not UTF-8 at byte 0"),  # UTF-16, which json.loads would take
        (b'{"a": "caf\xe9"}', "not UTF-8 at byte 10"),
        ("{not json", "not JSON"),
    ],
    ids=["one-too-deep", "200000-deep", "utf-16", "latin-1", "invalid"],
)
def test_parse_json_refuses(data: bytes | str, match: str) -> None:
    started = time.monotonic()
    with pytest.raises(BoundsError, match=match):
        parse_json(data)
    assert time.monotonic() - started < 5


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.integers() | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    )
)
def test_parse_json_gives_back_any_shallow_value(value: object) -> None:
    text = json.dumps(value)
    try:
        assert parse_json(text.encode()) == value
    except BoundsError as error:
        assert "nested deeper than" in str(error)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_parse_json_on_any_bytes_returns_or_refuses(data: bytes) -> None:
    try:
        parse_json(data)
    except BoundsError:
        pass


def test_read_capped_refuses_a_file_over_the_cap_unread(tmp_path: Path) -> None:
    path = tmp_path / "vocab.json"
    path.write_bytes(b"x" * 101)
    assert read_capped(path, 101) == b"x" * 101
    with pytest.raises(BoundsError, match="101 bytes, over the cap of 100"):
        read_capped(path, 100)
    with pytest.raises(BoundsError, match="not a regular file"):
        read_capped(Path("/dev/zero"), 100)


def test_read_capped_never_waits_on_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(BoundsError, match="not a regular file"):
        read_capped(fifo, 100)


def test_read_json_combines_the_caps(tmp_path: Path) -> None:
    path = tmp_path / "windows.json"
    path.write_text(nested(MAX_JSON_DEPTH + 1))
    with pytest.raises(BoundsError, match="nested deeper"):
        read_json(path, 10_000)
    with pytest.raises(FileNotFoundError):
        read_json(tmp_path / "absent.json", 10)


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_check_zip_members_checks_declared_sizes_and_count(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "m.keras", {"config.json": b"{}", "big.bin": b"\0" * 5000})
    check_zip_members(path, {"big.bin": 5000}, 10, 2)
    with pytest.raises(BoundsError, match="member 'big.bin' is 5000 bytes, over 4999"):
        check_zip_members(path, {"big.bin": 4999}, 10, 2)
    with pytest.raises(BoundsError, match="2 members, over 1"):
        check_zip_members(path, {"big.bin": 5000}, 10, 1)


def test_check_zip_members_finds_damaged_bytes(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "m.keras", {"config.json": b'{"a": 1}' * 100})
    data = bytearray(path.read_bytes())
    data[40] ^= 0xFF  # inside the compressed member
    path.write_bytes(bytes(data))
    with pytest.raises(BoundsError, match="damaged|not a readable zip"):
        check_zip_members(path, {}, 10_000, 5)
    path.write_bytes(b"not a zip at all")
    with pytest.raises(BoundsError, match="not a readable zip file"):
        check_zip_members(path, {}, 10_000, 5)


def test_read_zip_json_caps_and_limits_the_member(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "m.keras", {"config.json": nested(1000).encode()})
    with pytest.raises(BoundsError, match="nested deeper"):
        read_zip_json(path, "config.json", 10_000)
    with pytest.raises(BoundsError, match="over 100 bytes"):
        read_zip_json(path, "config.json", 100)
    with pytest.raises(BoundsError, match="no member 'metadata.json'"):
        read_zip_json(path, "metadata.json", 100)
