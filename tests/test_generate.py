"""The real `python -m pipeline.generate` CLI, run in a folder holding a tiny untrained model."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from pipeline.config import TrainParams
from pipeline.model import build_sequence_model

ROOT = Path(__file__).resolve().parents[1]
VOCABULARY = list("\n abcdefgh")
PROMPT = "bad cafe"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A folder laid out like the repository after `dvc repro`: the default paths resolve."""
    folder = tmp_path_factory.mktemp("generate")
    (folder / "models").mkdir()
    (folder / "data" / "encoded").mkdir(parents=True)
    keras.utils.set_random_seed(0)
    model = build_sequence_model(len(VOCABULARY), TrainParams(embedding_dim=8, units=16, layers=1))
    model.save(folder / "models" / "model.keras")
    (folder / "data" / "encoded" / "vocab.json").write_text(json.dumps({"chars": VOCABULARY}))
    return folder


def generate(project: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "CHARLSTM_DEBUG"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "pipeline.generate", *arguments],
        cwd=project, env=env, capture_output=True, text=True, check=False, timeout=120,
    )


def test_prints_the_prompt_and_its_continuation(project):
    result = generate(project, "--prompt", PROMPT, "--length", "40", "--seed", "5")
    assert result.returncode == 0, result.stderr
    output = result.stdout
    assert output.startswith(PROMPT) and output.endswith("\n")
    continuation = output[len(PROMPT) : -1]
    assert len(continuation) == 40
    assert set(continuation) <= set(VOCABULARY)


def test_same_seed_same_text_other_seed_other_text(project):
    arguments = ("--prompt", PROMPT, "--length", "40", "--temperature", "1.0")
    first = generate(project, *arguments, "--seed", "5")
    again = generate(project, *arguments, "--seed", "5")
    other = generate(project, *arguments, "--seed", "6")
    assert first.returncode == again.returncode == other.returncode == 0, first.stderr
    assert first.stdout == again.stdout
    assert first.stdout != other.stdout


def test_num_samples_prints_each_sample(project):
    result = generate(project, "--prompt", PROMPT, "--length", "30", "--num-samples", "3")
    assert result.returncode == 0, result.stderr
    headers = re.findall(r"^--- sample (\d+) ---$", result.stdout, flags=re.MULTILINE)
    assert headers == ["1", "2", "3"]
    samples = re.split(r"^--- sample \d+ ---\n", result.stdout, flags=re.MULTILINE)[1:]
    for sample in samples:
        assert sample.startswith(PROMPT) and sample.endswith("\n\n")
        assert len(sample) == len(PROMPT) + 30 + 2
        assert set(sample[len(PROMPT) :]) <= set(VOCABULARY)
    assert len(set(samples)) == 3


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--prompt", ""], "the prompt is empty"),
        (["--prompt", "ab§"], "not in the model's vocabulary: '§'"),
        (["--prompt", "ab", "--length", "0"], "--length must be between 1 and"),
        (["--prompt", "ab", "--length", "10000000"], "--length must be between 1 and"),
        (["--prompt", "ab", "--top-p", "0"], r"top-p must be in \(0, 1\]"),
        (["--prompt", "ab", "--top-p", "1.5"], r"top-p must be in \(0, 1\]"),
        (["--prompt", "ab", "--model", "missing.keras"], "missing.keras not found"),
    ],
)
def test_bad_requests_fail_with_one_line(project, arguments, message):
    result = generate(project, *arguments)
    assert result.returncode == 1
    assert re.fullmatch(f"generate: error: .*{message}.*\n", result.stderr), result.stderr
    assert result.stdout == ""


def test_a_corrupted_model_fails_with_one_line(project, tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "model.keras").write_bytes(b"\x00garbage, not a zip archive\xff" * 10)
    (tmp_path / "data" / "encoded").mkdir(parents=True)
    (tmp_path / "data" / "encoded" / "vocab.json").write_text(json.dumps({"chars": VOCABULARY}))
    result = generate(tmp_path, "--prompt", "ab")
    assert result.returncode == 1
    assert re.fullmatch(r"generate: error: .*cannot load the model.*\n", result.stderr), (
        result.stderr
    )
    assert result.stdout == ""
