"""Outputs are a function of their inputs: a fresh clone's `dvc repro` leaves dvc.lock as it is.

No wall-clock time, run id or machine path may enter a DVC-tracked output, and training is
bit-exact on one machine (train.deterministic), so every stage's hash repeats.
"""

from __future__ import annotations

import pytest

from tests.support.project import clean_environment, make_repo, run

pytestmark = pytest.mark.slow


def test_a_fresh_clone_reproduces_dvc_lock_and_the_model_to_the_bit(tmp_path):
    env = clean_environment()
    first = make_repo(tmp_path / "first", env, epochs=2)
    run(["dvc", "repro"], first, env)
    model = (first / "models/model.keras").read_bytes()
    run(["git", "add", "-A"], first, env)
    run(["git", "commit", "-q", "-m", "reproduced"], first, env)

    run(["dvc", "repro", "-f", "train"], first, env)
    assert (first / "models/model.keras").read_bytes() == model  # same weights, same bytes
    assert run(["git", "status", "--porcelain"], first, env).stdout == ""

    second = tmp_path / "second"
    run(["git", "clone", "-q", str(first), str(second)], tmp_path, env)
    run(["dvc", "repro"], second, env)
    assert run(["git", "status", "--porcelain"], second, env).stdout == ""  # dvc.lock unchanged
    assert (second / "models/model.keras").read_bytes() == model
