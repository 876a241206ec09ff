"""The real `python -m pipeline.generate` CLI, run in a folder holding a tiny untrained model.

Each call is a fresh process that imports TensorFlow (a few seconds), so runs that several tests
read are made once per module.
"""

import json
import random
import re
import shutil
import subprocess
import sys
import time
import zipfile
from functools import cache
from pathlib import Path

import pytest

from tests.support.generator import VOCABULARY, save_tiny_model, write_vocabulary
from tests.support.project import ROOT, clean_environment, run_module
from tests.support.servers import free_port

PROMPT = "bad cafe"
SEEDED = ("--prompt", PROMPT, "--length", "40", "--temperature", "1.0")
# TensorFlow may print absl lines at import, before any log level applies; error tests skip them.
TENSORFLOW_NOTICE = re.compile(r"WARNING: All log messages before absl::InitializeLog|[IWE]\d{4} ")


def make_project(folder: Path, model_bytes: bytes | None = None) -> Path:
    """`folder` laid out like the repository after `dvc repro`, so the default paths resolve."""
    (folder / "models").mkdir()
    (folder / "data" / "encoded").mkdir(parents=True)
    write_vocabulary(folder / "data" / "encoded" / "vocab.json")
    if model_bytes is not None:
        (folder / "models" / "model.keras").write_bytes(model_bytes)
        return folder
    save_tiny_model(folder / "models" / "model.keras")
    return folder


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return make_project(tmp_path_factory.mktemp("generate"))


def generate(project: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    env = clean_environment(PYTHONPATH=str(ROOT))
    return run_module("generate", *arguments, cwd=project, env=env, timeout=120)


@pytest.fixture(scope="module")
def seeded(project):
    """`seeded(seed)`: one CLI run per seed, shared by the tests that read it."""
    return cache(lambda seed: generate(project, *SEEDED, "--seed", str(seed)))


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if not TENSORFLOW_NOTICE.match(line)]


def test_prints_the_prompt_and_its_continuation(seeded):
    result = seeded(5)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(PROMPT) and result.stdout.endswith("\n")
    continuation = result.stdout[len(PROMPT) : -1]
    assert len(continuation) == 40
    assert set(continuation) <= set(VOCABULARY)


def test_same_seed_same_text_other_seed_other_text(project, seeded):
    again = generate(project, *SEEDED, "--seed", "5")
    assert again.returncode == seeded(6).returncode == 0, again.stderr
    assert again.stdout == seeded(5).stdout
    assert seeded(6).stdout != seeded(5).stdout


def test_prompt_letters_missing_from_the_vocabulary_are_lower_cased(project):
    result = generate(project, "--prompt", "BAD", "--length", "5")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("BAD") and len(result.stdout) == 3 + 5 + 1


def test_num_samples_prints_each_sample(project):
    result = generate(project, "--prompt", PROMPT, "--length", "30", "--num-samples", "3")
    assert result.returncode == 0, result.stderr
    headers = re.findall(r"^--- sample (\d+) ---$", result.stdout, flags=re.MULTILINE)
    assert headers == ["1", "2", "3"]
    samples = re.split(r"^--- sample \d+ ---\n", result.stdout, flags=re.MULTILINE)[1:]
    for sample in samples:
        assert sample.startswith(PROMPT) and sample.endswith("\n\n")
        assert len(sample) == len(PROMPT) + 30 + 2  # the text's newline, then print's
        assert set(sample[len(PROMPT) :]) <= set(VOCABULARY)
    assert len(set(samples)) == 3


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--prompt", ""], "the prompt is empty"),
        (["--prompt", "ab§"], "not in the model's vocabulary: '§'"),
        (["--prompt", "ab", "--length", "0"], "--length must be between 1 and 100000, got 0"),
        (["--prompt", "ab", "--length", "10000000"], "--length must be between 1 and 100000"),
        (["--prompt", "ab", "--top-p", "0"], r"top-p must be in \(0, 1\], got 0.0"),
        (["--prompt", "ab", "--top-p", "1.5"], r"top-p must be in \(0, 1\], got 1.5"),
        (["--prompt", "ab", "--temperature", "nan"], "temperature must be a finite number"),
        (["--prompt", "ab", "--temperature", "inf"], "temperature must be a finite number"),
        (["--prompt", "ab", "--seed", str(2**64)], "seed must be between"),
        (["--prompt", "ab", "--top-k", str(2**40)], "top-k must be between"),
        (["--prompt", "ab", "--model", "missing.keras"], "missing.keras not found"),
    ],
)
def test_bad_requests_fail_with_one_line(project, arguments, message):
    result = generate(project, *arguments)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = error_lines(result.stderr)
    assert re.fullmatch(f"generate: error: .*{message}.*", line)


def test_a_corrupted_model_fails_with_one_line(tmp_path):
    project = make_project(tmp_path, model_bytes=b"\x00garbage, not a zip archive\xff" * 10)
    result = generate(project, "--prompt", "ab")
    assert result.returncode == 1
    (line,) = error_lines(result.stderr)
    assert re.fullmatch(r"generate: error: models/model.keras: cannot load the model.*", line)
    assert result.stdout == ""


def rewritten(model: Path, destination: Path, **members: bytes) -> Path:
    """A copy of the `.keras` zip `model` with `members` (by name) replaced or added."""
    with zipfile.ZipFile(model) as source, zipfile.ZipFile(destination, "w") as target:
        for entry in source.infolist():
            target.writestr(entry, members.pop(entry.filename, source.read(entry)))
        for name, data in members.items():
            target.writestr(zipfile.ZipInfo(name), data, zipfile.ZIP_DEFLATED)
    return destination


def flipped(model: Path, destination: Path) -> Path:
    """A copy with bytes in the middle of the weights flipped (a bad disk, a bad copy)."""
    data = bytearray(model.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(byte ^ 0xFF for byte in data[middle : middle + 16])
    destination.write_bytes(bytes(data))
    return destination


def unregistered_layer(model: Path, destination: Path) -> Path:
    """A config naming a custom layer class that nothing registered."""
    with zipfile.ZipFile(model) as source:
        config = json.loads(source.read("config.json"))
    layer = config["config"]["layers"][-1]
    layer.update(module="my_project.layers", class_name="Attention2", registered_name="Custom>X")
    return rewritten(model, destination, **{"config.json": json.dumps(config).encode()})


def deep_config(model: Path, destination: Path) -> Path:
    deep = b'{"a": ' * 200_000 + b"1" + b"}" * 200_000
    return rewritten(model, destination, **{"config.json": deep})


def huge_config(model: Path, destination: Path) -> Path:
    """A config.json of 64 MiB (zip-compressed to 64 kB): over the 16 MiB cap, so never read."""
    return rewritten(model, destination, **{"config.json": b" " * 64 * 2**20})


DAMAGED_MODELS = {
    "corrupted-bytes": (flipped, "member 'model.weights.h5' is damaged \\(bad CRC-32\\)"),
    "unregistered-layer": (unregistered_layer, "Attention2"),
    "deep-config": (deep_config, "nested deeper than 64 levels"),
    "huge-config": (huge_config, "member 'config.json' is 67108864 bytes, over 16777216"),
}


@pytest.mark.parametrize("case", DAMAGED_MODELS)
def test_a_damaged_model_file_fails_with_one_line(project, tmp_path, case):
    damage, reason = DAMAGED_MODELS[case]
    model = damage(project / "models" / "model.keras", tmp_path / "model.keras")
    started = time.monotonic()
    result = generate(project, "--prompt", "ab", "--model", str(model))
    assert time.monotonic() - started < 60
    assert result.returncode == 1 and result.stdout == ""
    assert "Traceback" not in result.stderr
    (line,) = error_lines(result.stderr)
    assert re.fullmatch(f"generate: error: {model}: cannot load the model \\(.*{reason}.*", line)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"chars": ' + b"[" * 200_000 + b"]" * 200_000 + b"}", "nested deeper than 64 levels"),
        (b'{"chars": ["a"], "pad": "' + b"x" * 3 * 2**20 + b'"}', "over the cap of 2097152"),
    ],
    ids=["deep", "huge"],
)
def test_a_hostile_vocabulary_fails_with_one_line(project, tmp_path, content, reason):
    vocab = tmp_path / "vocab.json"
    vocab.write_bytes(content)
    result = generate(project, "--prompt", "ab", "--vocab", str(vocab))
    assert result.returncode == 1 and result.stdout == ""
    (line,) = error_lines(result.stderr)
    assert "vocab.json: not a vocabulary (" in line and reason in line


@pytest.mark.parametrize("chars", [VOCABULARY[:-1], [*VOCABULARY, "z"]], ids=["shorter", "longer"])
def test_a_vocabulary_that_does_not_fit_the_model_fails_before_any_output(project, tmp_path, chars):
    vocab = tmp_path / "vocab.json"
    vocab.write_text(json.dumps({"chars": chars}))
    result = generate(project, "--prompt", "ab", "--vocab", str(vocab))
    assert result.returncode == 1 and result.stdout == ""
    assert "Traceback" not in result.stderr
    (line,) = error_lines(result.stderr)
    assert f"vocabulary has {len(chars)} characters but model" in line


@pytest.mark.parametrize("arguments", [("--seed", str(2**64)), ("--temperature", "nan")])
def test_a_bad_setting_prints_nothing(project, arguments):
    result = generate(project, "--prompt", "ab", *arguments)
    assert result.returncode == 1 and result.stdout == ""


def test_a_bad_prompt_prints_nothing(project):
    result = generate(project, "--prompt", "ab§")
    assert result.returncode == 1
    assert result.stdout == ""


def test_an_error_is_the_only_stderr_line(project):
    result = generate(project, "--prompt", "ab", "--top-p", "0")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr


def test_a_corrupted_vocabulary_fails_with_one_line(project, tmp_path):
    broken = tmp_path / "vocab.json"
    broken.write_text("{not json")
    result = generate(project, "--prompt", "ab", "--vocab", str(broken))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = error_lines(result.stderr)
    assert re.fullmatch(r"generate: error: .*vocab.json.*", line)


def test_every_option_shows_its_default_in_the_help(project):
    result = generate(project, "--help")
    assert result.returncode == 0
    help_text = " ".join(result.stdout.split())
    for default in ("(default: 300)", "(default: 0.8)", "(default: models/model.keras)"):
        assert default in help_text
    assert "models:/<name>@<alias>" in help_text


def test_a_registered_model_that_does_not_exist_is_one_line(project):
    result = generate(project, "--prompt", PROMPT, "--model", "models:/nobody@champion")
    assert result.returncode == 1
    (line,) = error_lines(result.stderr)
    assert line.startswith("generate: error: cannot load models:/nobody@champion")


@pytest.fixture(scope="module")
def registered(project):
    """The tiny model logged as a generator and registered in the project's default store."""
    import mlflow  # noqa: PLC0415

    from pipeline.tracking import generator, registry  # noqa: PLC0415

    uri = f"sqlite:///{project / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run():
            info = generator.log_generator(
                project / "models" / "model.keras",
                project / "data" / "encoded" / "vocab.json",
                "tiny-generator",
            )
        mlflow.MlflowClient().set_registered_model_alias(
            "tiny-generator", registry.CHAMPION, str(info.registered_model_version)
        )
    finally:
        mlflow.set_tracking_uri(None)  # back to the default resolution, not a pinned copy of it
    return project


def test_a_registered_generator_by_alias_gives_the_same_text_as_its_file(registered, seeded):
    from_registry = generate(
        registered, *SEEDED, "--seed", "1", "--model", "models:/tiny-generator@champion"
    )
    assert from_registry.returncode == 0, from_registry.stderr
    assert from_registry.stdout == seeded(1).stdout


def test_no_password_or_token_of_the_store_url_is_printed(project):
    """MLflow's own reason text quotes the store's URL: it is redacted like the rest."""
    port = free_port()
    store = f"http://alice:s3cr3tPW@127.0.0.1:{port}/?token=t0k3n"
    env = clean_environment(PYTHONPATH=str(ROOT), MLFLOW_TRACKING_URI=store)
    arguments = ("--prompt", "ab", "--model", "models:/charlstm-macbeth-generator@champion")
    result = run_module("generate", *arguments, cwd=project, env=env, timeout=120)
    assert result.returncode == 1
    (line,) = error_lines(result.stderr)
    assert line.startswith("generate: error: cannot load models:/charlstm-macbeth-generator")
    assert f"http://***@127.0.0.1:{port}/?token=***" in line
    assert "s3cr3tPW" not in result.stderr + result.stdout
    assert "t0k3n" not in result.stderr + result.stdout


def truncated(store: Path) -> bytes:
    return store.read_bytes()[: store.stat().st_size // 3]


def random_bytes(store: Path) -> bytes:
    return random.Random(0).randbytes(store.stat().st_size)


@pytest.mark.parametrize("damage", [truncated, random_bytes], ids=["truncated", "random-bytes"])
def test_a_damaged_store_on_the_registered_path_is_one_line(registered, tmp_path, damage):
    (tmp_path / "mlflow.db").write_bytes(damage(registered / "mlflow.db"))
    result = generate(tmp_path, "--prompt", "ab", "--model", "models:/tiny-generator@champion")
    assert result.returncode == 1 and result.stdout == ""
    assert "Traceback" not in result.stderr
    (line,) = error_lines(result.stderr)
    assert re.fullmatch(
        r"generate: error: (MLflow tracking store sqlite:///.* is damaged \(.*\); move the file "
        r"aside.*|cannot load models:/tiny-generator@champion from .*)",
        line,
    )


# Another process holds an exclusive lock on the store (a long write): readers wait, then fail.
HOLD_EXCLUSIVE_LOCK = """
import sqlite3, sys, time
holder = sqlite3.connect(sys.argv[1], isolation_level=None)
holder.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(600)
"""


def test_a_long_locked_store_on_the_registered_path_is_one_line(registered, tmp_path):
    store = tmp_path / "mlflow.db"
    shutil.copy(registered / "mlflow.db", store)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_EXCLUSIVE_LOCK, str(store)], stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        env = clean_environment(
            PYTHONPATH=str(ROOT), MLFLOW_TRACKING_URI=f"sqlite:///{store}?timeout=1"
        )
        started = time.monotonic()
        arguments = ("--prompt", "ab", "--model", "models:/tiny-generator@champion")
        result = run_module("generate", *arguments, cwd=tmp_path, env=env, timeout=120)
        elapsed = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert result.returncode == 1 and result.stdout == ""
    (line,) = error_lines(result.stderr)
    assert "could not be used (database is locked)" in line
    assert elapsed < 90  # the URI's 1 s SQLite timeout, not minutes of retries


def test_no_notice_lands_between_the_prompt_and_the_text(project, seeded):
    """Even with TensorFlow's notices switched on, as a terminal shows stdout and stderr."""
    env = clean_environment(PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="0", PYTHONUNBUFFERED="1")
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.generate", *SEEDED],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=True,
        timeout=120,
    )
    # Whatever TensorFlow printed came before the prompt: the output ends with the clean text.
    assert result.stdout.endswith(seeded(0).stdout), result.stdout
