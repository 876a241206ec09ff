"""pipeline/tracking/store.py: the repository a queued experiment belongs to, and the SQLite store's
creation lock."""

from pathlib import Path

from filelock import FileLock

from pipeline.tracking import store


def test_project_root_of_a_queued_experiment_is_the_repository(tmp_path):
    copy = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpabc123"
    assert store.project_root(copy) == tmp_path / "repo"
    assert store.project_root(tmp_path / "repo") == tmp_path / "repo"


def test_the_store_lock_is_only_for_sqlite_and_waits_twice_its_timeout(tmp_path):
    lock = store.store_creation_lock(f"sqlite:///{tmp_path / 'mlflow.db'}?timeout=7")
    assert isinstance(lock, FileLock)
    assert Path(lock.lock_file) == tmp_path / "mlflow.db.lock"
    assert lock.timeout == 14
    assert store.store_creation_lock(f"sqlite:///{tmp_path / 'm.db'}").timeout == 120
    assert not isinstance(store.store_creation_lock("http://127.0.0.1:5000"), FileLock)
