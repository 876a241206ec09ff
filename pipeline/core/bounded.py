"""Reading files that may be hostile, within bounds: a size cap before anything is read, a
nesting limit on JSON, declared sizes of a zip's members checked before any is decompressed.

A 300 MB `vocab.json`, a `.keras` zip whose 7 MB hold a 2 GiB `config.json`, or JSON nested
200,000 deep would otherwise be read in full, decompressed in full or overflow Python's stack
(`RecursionError`) before any check could refuse them. Each function raises `BoundsError` (a
`ValueError`) with a short reason; callers turn it into their own one-line error.

Standard library only: the served generator carries this module (`tracking/generator.py`).
"""

from __future__ import annotations

import json
import os
import stat
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Deeper than any file this project writes (a Keras config is about 10 levels deep), shallow
# enough that a recursive consumer (Keras's deserialiser, a schema reader) never nears the stack.
MAX_JSON_DEPTH = 64
# What a damaged, truncated or foreign zip raises while its directory or a member is read.
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError, zlib.error)


class BoundsError(ValueError):
    """Input over a cap, nested too deeply, or not the format it claims to be."""


def read_capped(path: Path, max_bytes: int) -> bytes:
    """A regular file's bytes, refused unread when it holds more than `max_bytes`.

    The size is taken on the open descriptor and at most `max_bytes + 1` bytes are read, so a
    file that grows after the check, a device or a FIFO is never read without end.
    """
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise BoundsError("not a regular file")
        if status.st_size > max_bytes:
            raise BoundsError(f"{status.st_size} bytes, over the cap of {max_bytes}")
        with open(descriptor, "rb", closefd=False) as stream:
            data = stream.read(max_bytes + 1)
    finally:
        os.close(descriptor)
    if len(data) > max_bytes:
        raise BoundsError(f"over the cap of {max_bytes} bytes")
    return data


def check_depth(value: Any, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Refuse a parsed JSON value nested deeper than `max_depth` (walked without recursion)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if not isinstance(node, dict | list):
            continue
        if depth > max_depth:
            raise BoundsError(f"nested deeper than {max_depth} levels")
        children = node.values() if isinstance(node, dict) else node
        pending.extend((child, depth + 1) for child in children)


def parse_json(data: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`json.loads`, refusing invalid JSON, text that is not UTF-8 and deep nesting alike."""
    try:
        # Decoded here, not by `json.loads`, which would take bytes that start `FF FE` as UTF-16.
        value = json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    except RecursionError:  # the C scanner gives up near Python's recursion limit, at once
        raise BoundsError(f"nested deeper than {max_depth} levels") from None
    except UnicodeDecodeError as error:
        raise BoundsError(f"not UTF-8 at byte {error.start}") from None
    except json.JSONDecodeError as error:
        raise BoundsError(f"not JSON ({error})") from None
    check_depth(value, max_depth)
    return value


def read_json(path: Path, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """A JSON file within `max_bytes` and `max_depth`; raises `BoundsError` or `OSError`."""
    return parse_json(read_capped(path, max_bytes), max_depth)


def check_zip_members(
    path: Path, caps: Mapping[str, int], other_cap: int, max_members: int
) -> None:
    """Refuse a zip with over `max_members` members, or a member whose declared size is over its
    cap (`caps[name]`, else `other_cap`), and check every member's CRC.

    Python's zip reader never returns more than a member's declared size, so these caps bound
    what any later reader of the file decompresses; the CRC check finds damaged bytes here, in
    one line, instead of in the middle of a loader.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > max_members:
                raise BoundsError(f"{len(members)} members, over {max_members}")
            for member in members:
                cap = caps.get(member.filename, other_cap)
                if member.file_size > cap:
                    raise BoundsError(
                        f"member {member.filename!r} is {member.file_size} bytes, over {cap}"
                    )
            damaged = archive.testzip()
    except ZIP_ERRORS as error:
        raise BoundsError(f"not a readable zip file ({error})") from None
    if damaged is not None:
        raise BoundsError(f"member {damaged!r} is damaged (bad CRC-32)")


def read_zip_json(path: Path, member: str, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """One JSON member of a zip, read within `max_bytes` and `max_depth`."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open(member) as stream:
            data = stream.read(max_bytes + 1)
    except KeyError:
        raise BoundsError(f"no member {member!r}") from None
    except ZIP_ERRORS as error:
        raise BoundsError(f"not a readable zip file ({error})") from None
    if len(data) > max_bytes:
        raise BoundsError(f"member {member!r} is over {max_bytes} bytes")
    return parse_json(data, max_depth)
