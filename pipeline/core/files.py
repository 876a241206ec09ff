"""Atomic writes: a crash or a full disk never leaves a half-written output behind.

Each writer writes a temporary file in the destination folder, flushes it to disk (`fsync`), then
renames it over the destination (a rename within one file system is atomic on POSIX) and flushes
the folder, so that the rename itself survives a power cut. Outputs get the permissions the
user's umask gives an ordinary new file.

Temporary names carry the writer's process id (`.<name>.<pid>.<random>.tmp`): the next write of
the same output removes the leftovers of writers that are no longer running, and a folder whose
writer died between its two renames (only `.<name>.<pid>.<random>.old` left) is put back first.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from pipeline.core.errors import UnreadableArray


@contextlib.contextmanager
def errors_name(destination: Path, temporary: Path) -> Iterator[None]:
    """Re-raise a system call's error naming the output a user knows, not a temporary path.

    A full disk (ENOSPC) or a file-size limit (EFBIG) surfaces from `write()` or `flush()` with
    no file name at all; the CLI prints `strerror: filename`, so it gets the destination.
    """
    try:
        yield
    except OSError as error:
        inside = Path(os.path.abspath(temporary))
        failed = Path(os.path.abspath(os.fsdecode(error.filename or temporary)))
        if error.errno is None or not failed.is_relative_to(inside):
            raise  # not a file-system error (e.g. from requests), or about some other file
        where = destination / failed.relative_to(inside)
        # OSError(errno, ...) picks the matching subclass, e.g. FileNotFoundError for ENOENT.
        raise OSError(error.errno, error.strerror or str(error), str(where)) from error


def current_umask() -> int:
    """The process umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_path(path: Path) -> None:
    """Flush a file's data, or a folder's entries (a rename or a new name), to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def writer_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, as another user
    return True


def leftovers_of(destination: Path) -> list[tuple[Path, int]]:
    """(path, writer pid) of every temporary or retired copy of `destination` in its folder."""
    prefix = f".{destination.name}."
    found = []
    for path in destination.parent.iterdir():
        if not path.name.startswith(prefix):
            continue
        pid, _, rest = path.name.removeprefix(prefix).partition(".")
        if pid.isdigit() and (".tmp" in rest or rest.endswith(".old")):
            found.append((path, int(pid)))
    return found


def remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def recover_leftovers(destination: Path) -> None:
    """Clean up after writers of `destination` that died: put back a retired folder that was
    never replaced (a kill between the two renames of `atomic_directory`), delete the rest."""
    if not destination.parent.is_dir():
        return
    dead = [(path, pid) for path, pid in leftovers_of(destination) if not writer_alive(pid)]
    retired = [path for path, _ in dead if path.name.endswith(".old")]
    if retired and not destination.exists():
        os.replace(retired[0], destination)
        fsync_path(destination.parent)
    for path, _ in dead:
        if path.exists():
            remove_path(path)


def temporary_prefix(destination: Path) -> str:
    return f".{destination.name}.{os.getpid()}."


@contextlib.contextmanager
def atomic_path(destination: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to `destination`; rename it into place on success only."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    recover_leftovers(destination)
    handle, name = tempfile.mkstemp(
        prefix=temporary_prefix(destination), suffix=f".tmp{suffix}", dir=destination.parent
    )
    os.close(handle)
    os.chmod(name, 0o666 & ~current_umask())  # mkstemp creates 0600, whatever the umask says
    temporary = Path(name)
    try:
        with errors_name(destination, temporary):
            yield temporary
            if temporary.is_file():  # the caller may have written it by name: flush it too
                fsync_path(temporary)
            os.replace(temporary, destination)
            fsync_path(destination.parent)
    finally:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_directory(destination: Path) -> Iterator[Path]:
    """Yield an empty folder next to `destination`; it replaces `destination` only on success.

    Two renames, so a crash leaves the old folder, the new one or none, never a mix of both; a
    crash between them leaves only the old one under a temporary name, put back on the next run.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    recover_leftovers(destination)
    temporary = Path(
        tempfile.mkdtemp(
            prefix=temporary_prefix(destination), suffix=".tmp", dir=destination.parent
        )
    )
    os.chmod(temporary, 0o777 & ~current_umask())
    retired = temporary.with_suffix(".old")
    try:
        with errors_name(destination, temporary):
            yield temporary
            for path in [*temporary.rglob("*"), temporary]:
                fsync_path(path)
            if destination.exists():
                os.replace(destination, retired)
            os.replace(temporary, destination)
            fsync_path(destination.parent)
    finally:
        for leftover in (temporary, retired):
            if leftover.exists():
                shutil.rmtree(leftover)


@contextlib.contextmanager
def atomic_open(destination: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file for writing; it replaces `destination` only if the block succeeds."""
    encoding = None if "b" in mode else "utf-8"
    with atomic_path(destination) as temporary, temporary.open(mode, encoding=encoding) as stream:
        yield stream
        stream.flush()
        os.fsync(stream.fileno())  # here too: a full disk may only surface at the flush


def write_text(destination: Path, text: str) -> None:
    with atomic_open(destination, "w") as stream:
        stream.write(text)


def write_bytes(destination: Path, data: bytes) -> None:
    with atomic_open(destination, "wb") as stream:
        stream.write(data)


def write_json(destination: Path, payload: Any) -> None:
    write_text(destination, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def save_array(destination: Path, array: np.ndarray) -> None:
    # Not `np.save(stream, ...)`: on a real file numpy writes through a C `FILE*` and ignores a
    # failed flush, so a full disk would leave a truncated .npy behind and report success.
    # Python's own stream raises the error instead.
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    with atomic_open(destination, "wb") as stream:
        stream.write(buffer.getbuffer())


def load_array(source: Path) -> np.ndarray:
    """Load a `.npy` file without ever unpickling: an object array (or a truncated or foreign
    file) raises `UnreadableArray`, which the CLI reports in one line."""
    try:
        return np.load(source, allow_pickle=False)
    except (ValueError, EOFError) as error:
        raise UnreadableArray(
            f"{source}: not a plain numeric .npy array ({error}); "
            "object arrays are never unpickled: re-create it with the stage that writes it"
        ) from None


def read_json(source: Path) -> Any:
    with source.open(encoding="utf-8") as stream:
        return json.load(stream)
