"""The README and the docs are code: every fenced `bash` and `python` block of README.md and of
docs/*.md runs, in order (the README first, then the pages by name), as a newcomer runs it, in a
fresh clone of this repository's HEAD.

Nothing is activated and no venv is on PATH, until the block where the README itself says
`source .venv/bin/activate`; from there on each block starts with that line, as the reader's
shell would have it. The clone gets this checkout's `.venv` (linked, as `make setup` would have
made one) and tiny params, so that the blocks that train take seconds. A block marked
`<!-- readme-test: server PORT -->` runs in the background on a free port (every later mention of
PORT follows it) until a block that does not mention PORT; a `skip` block is reported skipped with
its reason; a `run by PATH` block must name a file that exists (that test or .ci/run runs it).

The fast checks beside it: every marker is known, the README's project tree names every package
and module of `pipeline/`, every link between the pages resolves (anchors included), every table
fits 120 columns, and no page keeps a diary (dated remarks about the day's machine, suite counts).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.support.corpora import CORPUS
from tests.support.project import ROOT, SOURCE_NAME, clean_environment, run, tiny_params
from tests.support.readme import Block, doc_pages, page_blocks, read_page, section_blocks
from tests.support.servers import free_port
from tests.support.team import link_venv

BLOCKS = [block for page in doc_pages() for block in page_blocks(page)]
ACTIVATE = "source .venv/bin/activate"
BLOCK_TIMEOUT_S = 900
SERVER_START_S = 300  # `mlflow models serve` loads TensorFlow and the model before it listens


def newcomer_environment() -> dict[str, str]:
    """A shell with no venv active or on PATH (what `clean_environment` adds comes out again)."""
    env = clean_environment()
    env.pop("VIRTUAL_ENV", None)
    venvs = {str(ROOT / ".venv" / "bin"), str(Path(sys.executable).parent)}
    kept = [
        entry
        for entry in env["PATH"].split(os.pathsep)
        if entry.rstrip("/") not in venvs and not entry.rstrip("/").endswith("/.venv/bin")
    ]
    env["PATH"] = os.pathsep.join(kept)
    return env


def readme_params(clone: Path) -> dict:
    """The clone's own params, shrunk like `tiny_params` (seconds per training), keeping the
    README's MLflow names (`charlstm-macbeth`, `charlstm-macbeth-generator`)."""
    with (clone / "params.yaml").open(encoding="utf-8") as stream:
        committed = yaml.safe_load(stream)
    params = tiny_params()
    params["mlflow"] = committed["mlflow"]
    return {section: params.get(section, values) for section, values in committed.items()}


def make_clone(folder: Path, env: dict[str, str]) -> Path:
    """`git clone` of HEAD with tiny params and corpus committed, the venv linked, and the set-up
    stamp left newer than pyproject.toml/constraints.txt (so `make` never reinstalls into the
    shared venv)."""
    run(["git", "clone", "-q", str(ROOT), str(folder)], folder.parent, env)
    (folder / "params.yaml").write_text(yaml.safe_dump(readme_params(folder)), encoding="utf-8")
    (folder / SOURCE_NAME).write_bytes(CORPUS)
    run(["git", "add", "params.yaml", SOURCE_NAME], folder, env)
    run(["git", "commit", "-q", "-m", "tiny params for the README test"], folder, env)
    link_venv(folder)
    stamps = list((folder / ".venv").glob(".installed-*"))
    assert stamps, "the venv has no set-up stamp: run `make setup` first"
    before = min(stamp.stat().st_mtime for stamp in stamps) - 60
    for name in ("pyproject.toml", "constraints.txt"):
        os.utime(folder / name, (before, before))
    return folder


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Server:
    readme_port: str  # the port the page names, e.g. "5001"
    page: str  # the page whose block started it
    port: int  # the free port it runs on here
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)


@dataclass
class Reader:
    """The newcomer's shell state across blocks: the clone, whether the venv is active, and the
    servers started so far."""

    clone: Path
    env: dict[str, str]
    activated: bool = False
    servers: list[Server] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)  # README port -> the port used here

    def script(self, block: Block) -> str:
        code = block.code
        for readme_port, port in self.ports.items():
            code = re.sub(rf"\b{readme_port}\b", str(port), code)
        if block.language == "python":
            code = f"python - <<'PYTHON'\n{code}PYTHON\n"
        prefix = f"{ACTIVATE}\n" if self.activated else ""
        return f"set -euo pipefail\n{prefix}{code}"

    def run(self, block: Block) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["bash", "-c", self.script(block)],
            cwd=self.clone,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
            check=False,
        )
        assert result.returncode == 0, (
            f"{block.page} block at line {block.line} ({block.section}) failed:\n{block.code}\n"
            f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
        )
        if ACTIVATE in block.code:
            self.activated = True
        return result

    def start_server(self, block: Block, readme_port: str) -> Server:
        log = self.clone.parent / f"server-{block.page.replace('/', '-')}-{block.line}.log"
        self.ports[readme_port] = free_port()
        with log.open("wb") as output:
            process = subprocess.Popen(
                ["bash", "-c", self.script(block)],
                cwd=self.clone,
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends the server's children
            )
        server = Server(readme_port, block.page, self.ports[readme_port], process)
        self.servers.append(server)
        deadline = time.monotonic() + SERVER_START_S
        while not port_open(server.port):
            assert server.process.poll() is None, (
                f"{block.page} server block at line {block.line} exited:\n{log.read_text()[-4000:]}"
            )
            assert time.monotonic() < deadline, f"no server on port {server.port}: {block.code}"
            time.sleep(1)
        return server

    def stop_servers_not_in(self, block: Block) -> None:
        """Stop the servers that `block` does not use: a page's servers end with the page."""
        for server in list(self.servers):
            named = re.search(rf"\b{server.readme_port}\b", block.code)
            if server.page != block.page or not named:
                server.stop()
                self.servers.remove(server)
                del self.ports[server.readme_port]

    def stop_all(self) -> None:
        for server in self.servers:
            server.stop()
        self.servers.clear()
        self.ports.clear()


@pytest.fixture(scope="module")
def reader(tmp_path_factory) -> Iterator[Reader]:
    """A fresh clone where the README's quick start (`make repro`) has run, nothing activated."""
    env = newcomer_environment()
    clone = make_clone(tmp_path_factory.mktemp("readme") / "clone", env)
    result = subprocess.run(
        ["make", "repro"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, f"make repro failed:\n{result.stdout}\n{result.stderr}"
    shell = Reader(clone, env)
    yield shell
    shell.stop_all()


def test_the_newcomer_shell_has_no_venv():
    env = newcomer_environment()
    assert "VIRTUAL_ENV" not in env
    found = subprocess.run(
        ["bash", "-c", "command -v dvc mlflow || true"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert ".venv" not in found.stdout


def test_every_block_has_a_known_marker():
    for block in BLOCKS:
        assert re.fullmatch(r"|skip \(.+\)|run by \S+( \(.+\))?|server \d+", block.marker), block


def test_the_readme_and_every_page_have_blocks_that_run():
    pages = {block.page for block in BLOCKS if not block.marker}
    assert "README.md" in pages and "docs/serving.md" in pages, sorted(pages)


@pytest.mark.parametrize(
    "block", [b for b in BLOCKS if b.marker.startswith("run by ")], ids=lambda block: block.label
)
def test_a_block_run_elsewhere_names_an_existing_file(block: Block):
    path = block.marker.split()[2]
    assert (ROOT / path).is_file(), f"{block.page} line {block.line} names {path}: missing"
    if path == ".ci/run":
        ci = (ROOT / path).read_text(encoding="utf-8")
        assert re.search(r"^make test$", ci, re.MULTILINE), ".ci/run no longer runs make test"
        assert "make repro" in ci, ".ci/run no longer runs the quick start"
    if path.startswith("docs/"):  # a page that this test runs: the block must be one of its own
        same = [other for other in page_blocks(path) if other.code == block.code]
        assert same, f"{block.page} line {block.line}: {path} has no such block"


def tree_packages(tree: str) -> dict[str, set[str]]:
    """The README tree's `  <package>/  what it holds` lines (continued on indented lines), as
    package -> the words on them."""
    packages: dict[str, set[str]] = {}
    current = None
    for line in tree.splitlines():
        entry = re.match(r"^  (\w+)/\s+(.*)$", line)
        if entry:
            current = entry.group(1)
            packages[current] = set(re.findall(r"\w+", entry.group(2)))
        elif current and re.match(r"^ {4,}\S", line):
            packages[current] |= set(re.findall(r"\w+", line))
        else:
            current = None
    return packages


def test_the_readme_tree_is_the_pipeline_folder():
    (tree,) = section_blocks("README.md", "Project structure", "text")
    pipeline = ROOT / "pipeline"
    for runnable in sorted(pipeline.glob("*.py")):
        if runnable.name != "__init__.py":
            assert runnable.name in tree.split(), f"the README's tree lacks {runnable.name}"
    packages = tree_packages(tree)
    found = sorted(path.name for path in pipeline.iterdir() if (path / "__init__.py").is_file())
    assert sorted(packages) == found, "the README's tree names other packages than pipeline/'s"
    for package, words in packages.items():
        modules = sorted(path.stem for path in (pipeline / package).glob("[!_]*.py"))
        missing = [module for module in modules if module not in words]
        assert not missing, f"the README's tree line for {package}/ lacks {missing}"


def heading_anchors(page: str) -> set[str]:
    """GitHub's anchors for the headings of `page`: lower case, punctuation out, spaces to -."""
    headings = re.findall(r"^#+ (.+)$", read_page(page), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", doc_pages())
def test_every_link_between_the_pages_resolves(page: str):
    text = re.sub(r"^```.*?^```", "", read_page(page), flags=re.MULTILINE | re.DOTALL)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"\w+:", target):
            continue  # http(s): and mailto: links go outside the repository
        name, _, anchor = target.partition("#")
        linked = (Path(page).parent / name).as_posix() if name else page
        assert (ROOT / linked).is_file(), f"{page} links {target}: no file {linked}"
        if anchor:
            assert anchor in heading_anchors(linked), f"{page} links {target}: no such heading"


@pytest.mark.parametrize("page", doc_pages())
def test_every_table_fits_120_columns(page: str):
    rows = [line for line in read_page(page).splitlines() if line.startswith("|")]
    wide = [row for row in rows if len(row) > 120]
    assert not wide, f"{page}: table rows over 120 columns (shorter cells, prose below):\n{wide}"


# Words of a lab notebook: a number carries its date, its machine and its command instead, and the
# suite's counts and timings are CI's to print.
DIARY = re.compile(
    r"\b(today|yesterday|this session|last session|an earlier session|last time|this week)\b"
    r"|\b\d[\d,]* (tests|passed|test cases)\b(?!/)",
    re.IGNORECASE,
)


@pytest.mark.parametrize("page", doc_pages())
def test_no_page_keeps_a_diary(page: str):
    found = [match.group(0) for match in DIARY.finditer(read_page(page))]
    assert not found, f"{page} says {found}: give the date, the machine and the command instead"


@pytest.mark.slow
@pytest.mark.timeout(BLOCK_TIMEOUT_S * 2)  # the first also runs `make repro`; a sweep takes minutes
@pytest.mark.parametrize("block", BLOCKS, ids=[block.label for block in BLOCKS])
def test_readme_block(block: Block, reader: Reader):
    if block.marker.startswith("skip"):
        reader.stop_servers_not_in(block)
        pytest.skip(f"{block.page} line {block.line}: {block.marker}")
    if block.marker.startswith("run by "):
        return  # test_a_block_run_elsewhere_names_an_existing_file checks the file it names
    reader.stop_servers_not_in(block)
    if block.marker.startswith("server "):
        server = reader.start_server(block, block.marker.split()[1])
        assert server.process.poll() is None
        return
    result = reader.run(block)
    if "pipeline.generate" in block.code and "--prompt" in block.code:
        assert result.stdout.strip(), "the generate command printed nothing"
    if "/invocations" in block.code:
        assert '"text"' in result.stdout or "predictions" in result.stdout, result.stdout
