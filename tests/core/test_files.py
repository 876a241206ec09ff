"""Atomic writers: a failed write leaves the previous output untouched."""

import os

import numpy as np
import pytest

from pipeline.core.files import (
    atomic_directory,
    current_umask,
    load_array,
    save_array,
    write_json,
    write_text,
)


def test_write_text_replaces_the_file_only_on_success(tmp_path):
    target = tmp_path / "out" / "corpus.txt"
    write_text(target, "first")
    assert target.read_text() == "first"
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~current_umask())
    with pytest.raises(TypeError):
        write_text(target, None)  # type: ignore[arg-type]
    assert target.read_text() == "first"
    assert [path.name for path in target.parent.iterdir()] == ["corpus.txt"]


def test_write_json_is_sorted_and_ends_with_a_newline(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"b": 1, "a": 2})
    assert target.read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'


def test_arrays_round_trip_and_never_unpickle(tmp_path):
    target = tmp_path / "ids.npy"
    save_array(target, np.arange(5, dtype=np.uint8))
    assert load_array(target).tolist() == [0, 1, 2, 3, 4]
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle=False"):
        load_array(tmp_path / "objects.npy")


def test_atomic_directory_replaces_the_old_folder_on_success(tmp_path):
    destination = tmp_path / "validation"
    (destination / "old").mkdir(parents=True)
    with atomic_directory(destination) as folder:
        (folder / "index.html").write_text("new")
    assert [path.name for path in destination.iterdir()] == ["index.html"]
    assert [path.name for path in tmp_path.iterdir()] == ["validation"]


def test_atomic_directory_keeps_the_old_folder_when_the_build_fails(tmp_path):
    destination = tmp_path / "validation"
    (destination / "old").mkdir(parents=True)
    with pytest.raises(RuntimeError), atomic_directory(destination) as folder:
        (folder / "index.html").write_text("half")
        raise RuntimeError("crash")
    assert [path.name for path in destination.iterdir()] == ["old"]
    assert [path.name for path in tmp_path.iterdir()] == ["validation"]


def test_leftovers_of_a_running_writer_are_kept_and_of_a_dead_one_removed(tmp_path):
    dead = 2**22 + 12345  # above Linux's default pid_max, so no process has it
    ours = tmp_path / f".corpus.txt.{os.getpid()}.abc.tmp"
    theirs = tmp_path / f".corpus.txt.{dead}.abc.tmp"
    unrelated = tmp_path / ".corpus.txt.notes"
    for path in (ours, theirs, unrelated):
        path.write_text("partial")
    write_text(tmp_path / "corpus.txt", "new")
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        ["corpus.txt", ours.name, unrelated.name]
    )


def test_a_retired_folder_is_put_back_when_its_replacement_never_arrived(tmp_path):
    dead = 2**22 + 12345
    retired = tmp_path / f".encoded.{dead}.xyz.old"
    retired.mkdir()
    (retired / "vocab.json").write_text("old")
    (tmp_path / f".encoded.{dead}.xyz.tmp").mkdir()
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "encoded"):
        raise RuntimeError("this write fails")
    assert (tmp_path / "encoded" / "vocab.json").read_text() == "old"
    assert [path.name for path in tmp_path.iterdir()] == ["encoded"]


def test_files_and_folders_get_the_umask_permissions(tmp_path):
    previous = os.umask(0o027)
    try:
        write_text(tmp_path / "a.txt", "a")
        with atomic_directory(tmp_path / "folder") as folder:
            write_text(folder / "b.txt", "b")
    finally:
        os.umask(previous)
    assert oct((tmp_path / "a.txt").stat().st_mode & 0o777) == oct(0o640)
    assert oct((tmp_path / "folder").stat().st_mode & 0o777) == oct(0o750)
