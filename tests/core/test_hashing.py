"""pipeline/core/hashing.py: a folder's hash follows its file names and bytes."""

from pipeline.core import hashing


def test_hash_folder_changes_with_names_and_bytes(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "ids.npy").write_bytes(b"123")
    first = hashing.hash_folder(tmp_path / "a")
    assert len(first) == 64
    assert hashing.hash_folder(tmp_path / "a") == first
    (tmp_path / "a" / "ids.npy").write_bytes(b"124")
    assert hashing.hash_folder(tmp_path / "a") != first
    (tmp_path / "a" / "ids.npy").rename(tmp_path / "a" / "other.npy")
    (tmp_path / "a" / "other.npy").write_bytes(b"123")
    assert hashing.hash_folder(tmp_path / "a") != first  # same bytes, another name
