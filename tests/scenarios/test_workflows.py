"""The GitHub Actions workflows: valid, secure, and following the project's CI policy.

GitHub cannot run here, so two offline linters stand in for it, each proven on a broken copy:
check-jsonschema validates against the vendored GitHub workflow schema (misspelled keys, wrong
types, unknown triggers) and zizmor loads and audits each workflow (jobs it cannot model, such as
one without steps; template injection; excessive permissions; unpinned actions). The policy
checks below cover what neither enforces.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.project import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
BIN = Path(sys.executable).parent
# A version tag (v4, v4.2, v4.2.2) or a full commit SHA.
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@(v\d+(\.\d+){0,2}|[0-9a-f]{40})$")


def load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def triggers(workflow: dict) -> dict:
    # YAML 1.1 reads the bare key `on` as the boolean True.
    return workflow.get("on", workflow.get(True))


def run_linter(command: list[str | Path]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("GH_TOKEN", "GITHUB_TOKEN")}
    return subprocess.run(
        command, capture_output=True, text=True, check=False, env=env, timeout=120
    )


def check_schema(path: Path) -> subprocess.CompletedProcess:
    return run_linter(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", path]
    )


def audit(path: Path) -> subprocess.CompletedProcess:
    return run_linter([BIN / "zizmor", "--offline", "--no-progress", path])


def policy_problems(workflow: dict) -> list[str]:
    """Breaches of the CI policy: least privilege, concurrency, timeouts, pinned actions."""
    problems = []
    top = workflow.get("permissions")
    if top is None:
        problems.append("no top-level permissions")
    elif not isinstance(top, dict) or "write" in top.values():
        problems.append(f"top-level permissions must be read-only, got {top!r}")
    if not workflow.get("concurrency"):
        problems.append("no concurrency group")
    for name, job in workflow["jobs"].items():
        if "timeout-minutes" not in job:
            problems.append(f"job {name}: no timeout-minutes")
        permissions = job.get("permissions", {})
        if not isinstance(permissions, dict):
            problems.append(f"job {name}: permissions {permissions!r}")
        else:
            writes = {scope for scope, level in permissions.items() if level == "write"}
            if writes - {"pull-requests"}:
                problems.append(f"job {name}: may write {sorted(writes)}")
        for step in job.get("steps", []):
            if "uses" in step and not PINNED.match(step["uses"]):
                problems.append(f"job {name}: {step['uses']} is not pinned")
    return problems


def test_both_workflows_exist():
    assert {path.name for path in WORKFLOWS.glob("*.yml")} >= {"test.yml", "retrain.yml"}


@pytest.mark.parametrize("name", ["test.yml", "retrain.yml"])
def test_schema_accepts_the_workflow(name):
    result = check_schema(WORKFLOWS / name)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["test.yml", "retrain.yml"])
def test_zizmor_finds_nothing(name):
    result = audit(WORKFLOWS / name)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["test.yml", "retrain.yml"])
def test_workflow_follows_the_policy(name):
    assert policy_problems(load(name)) == []


def test_sha_pins_name_their_version():
    for path in WORKFLOWS.glob("*.yml"):
        for line in path.read_text().splitlines():
            if re.search(r"uses: \S+@[0-9a-f]{40}", line):
                assert re.search(r"@[0-9a-f]{40} # v\d+\.\d+\.\d+$", line), line


BROKEN = {
    "misspelled key": (
        lambda text: text.replace("runs-on:", "runs-onn:", 1),
        check_schema,
        "'runs-on' is a required property",
    ),
    "unknown trigger": (
        lambda text: text.replace("  pull_request:\n", "  pull-request:\n", 1),
        check_schema,
        "$.on: {'push': None, 'pull-request': None} is not valid",
    ),
    "timeout as text": (
        lambda text: text.replace("timeout-minutes: 30", "timeout-minutes: half an hour", 1),
        check_schema,
        "timeout-minutes",
    ),
    "job without steps": (
        lambda text: text[: text.index("    steps:")],
        audit,
        "failed to load",
    ),
    "template injection": (
        lambda text: text + '      - run: echo "${{ github.event.pull_request.title }}"\n',
        audit,
        "template-injection",
    ),
    "unpinned third-party action": (
        lambda text: text + "      - uses: someone/some-action@main\n",
        audit,
        "unpinned-uses",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_linters_fail_on_a_broken_copy(case, tmp_path):
    breaks, linter, message = BROKEN[case]
    original = (WORKFLOWS / "test.yml").read_text()
    broken = tmp_path / "test.yml"
    broken.write_text(breaks(original))
    assert broken.read_text() != original
    result = linter(broken)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda w: w.update(permissions="write-all"), "top-level permissions must be read-only"),
        (lambda w: w.pop("permissions"), "no top-level permissions"),
        (lambda w: w.pop("concurrency"), "no concurrency group"),
        (lambda w: w["jobs"]["retrain"].pop("timeout-minutes"), "job retrain: no timeout-minutes"),
        (
            lambda w: w["jobs"]["retrain"].update(permissions={"contents": "write"}),
            "job retrain: may write ['contents']",
        ),
        (
            lambda w: w["jobs"]["retrain"]["steps"][0].update(uses="actions/checkout@main"),
            "job retrain: actions/checkout@main is not pinned",
        ),
    ],
)
def test_policy_check_catches_a_breach(mutate, problem):
    workflow = load("retrain.yml")
    mutate(workflow)
    assert any(found.startswith(problem) for found in policy_problems(workflow))


def test_test_workflow_runs_make_test_and_cancels_superseded_runs():
    workflow = load("test.yml")
    assert set(triggers(workflow)) == {"push", "pull_request"}
    assert workflow["concurrency"]["cancel-in-progress"] is True
    steps = workflow["jobs"]["test"]["steps"]
    python = next(step for step in steps if step["uses"].startswith("actions/setup-python@"))
    assert python["with"]["python-version"] == "3.11"
    assert python["with"]["cache"] == "pip"
    assert "constraints.txt" in python["with"]["cache-dependency-path"]
    assert steps[-1]["run"] == "make test"


def test_retrain_triggers():
    on = triggers(load("retrain.yml"))
    assert on["push"]["branches"] == ["main"]
    for event in ("push", "pull_request"):
        assert {"params.yaml", "dvc.yaml", "dvc.lock", "pipeline/**", "data/**.dvc"} <= set(
            on[event]["paths"]
        )
    assert on["schedule"][0]["cron"]
    inputs = on["workflow_dispatch"]["inputs"]
    assert inputs["params_overrides"]["type"] == "string"
    assert inputs["runner"]["default"] == "ubuntu-latest"


def test_runner_is_a_label_or_a_json_list():
    # startsWith guards fromJSON, which would fail on a plain label such as ubuntu-latest; push,
    # pull_request and schedule have no inputs, so they fall through to ubuntu-latest.
    assert load("retrain.yml")["jobs"]["retrain"]["runs-on"] == (
        "${{ startsWith(inputs.runner, '[') && fromJSON(inputs.runner) "
        "|| inputs.runner || 'ubuntu-latest' }}"
    )


def test_retrain_job_steps():
    workflow = load("retrain.yml")
    assert workflow["concurrency"] == {
        "group": "retrain-${{ github.ref }}",
        "cancel-in-progress": False,
    }
    job = workflow["jobs"]["retrain"]
    assert "permissions" not in job  # the read-only top level
    assert job["env"]["MLFLOW_TRACKING_URI"] == "${{ secrets.MLFLOW_TRACKING_URI }}"
    steps = job["steps"]
    assert steps[0]["with"]["fetch-depth"] == 0
    cache = next(step for step in steps if step.get("uses", "").startswith("actions/cache@"))
    assert cache["with"]["path"] == ".dvc/cache"
    runs = [step["run"] for step in steps if "run" in step]
    assert runs == [
        "make setup",
        "make dvc-pull",
        "make retrain",
        "make metrics-report",
        'cat reports/compare/report.md >> "$GITHUB_STEP_SUMMARY"',
    ]
    retrain = next(step for step in steps if step.get("run") == "make retrain")
    assert retrain["env"]["PARAMS_OVERRIDES"] == "${{ inputs.params_overrides }}"
    outputs = next(step for step in steps if step.get("with", {}).get("name") == "retrain-outputs")
    assert {"reports/", "models/"} <= set(outputs["with"]["path"].split())
    assert outputs["if"] == "always()"


def test_only_the_comment_job_writes_to_the_pull_request():
    jobs = load("retrain.yml")["jobs"]
    comment = jobs["comment"]
    assert comment["permissions"]["pull-requests"] == "write"
    assert comment["needs"] == "retrain"
    assert comment["if"].startswith("github.event_name == 'pull_request'")
    script = comment["steps"][-1]["with"]["script"]
    assert "require('./scripts/pr_comment.js')" in script


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([\w-]+):", text, flags=re.MULTILINE))


def test_every_run_step_is_a_make_target_or_a_script():
    targets = makefile_targets()
    for path in WORKFLOWS.glob("*.yml"):
        for job in yaml.safe_load(path.read_text())["jobs"].values():
            for step in job["steps"]:
                command = step.get("run", "").strip()
                if not command or command.startswith("cat reports/compare/report.md >>"):
                    continue
                words = command.split()
                if words[0] == "make":
                    assert words[1] in targets, f"{path.name}: no make target {words[1]}"
                else:
                    script = ROOT / words[0]
                    assert words[0].startswith("scripts/"), f"{path.name}: inline `{command}`"
                    assert os.access(script, os.X_OK), f"{script} is not executable"


def test_scripts_are_executable_and_documented():
    for script in (ROOT / "scripts").glob("*.sh"):
        assert os.access(script, os.X_OK), script
        lines = script.read_text().splitlines()
        assert lines[0] == "#!/usr/bin/env bash", script
        assert lines[1].startswith("# "), f"{script}: no description at the top"
        assert "set -euo pipefail" in lines, script


FAKE_GITHUB = """
const assert = require('assert');
const upsert = require(process.argv[1]);
const comments = [{ id: 1, user: { type: 'User' }, body: 'looks good' }];
const github = {
  paginate: async (method, args) => { assert.strictEqual(args.issue_number, 7); return comments; },
  rest: { issues: {
    listComments: 'listComments',
    createComment: async ({ body }) => {
      comments.push({ id: comments.length + 1, user: { type: 'Bot' }, body, html_url: 'u' });
      return { data: { html_url: 'u' } };
    },
    updateComment: async ({ comment_id, body }) => {
      comments.find((c) => c.id === comment_id).body = body;
    },
  } },
};
const context = { repo: { owner: 'o', repo: 'r' }, issue: { number: 7 }, runId: 42,
                  serverUrl: 'https://example.invalid' };
const core = { info: () => {} };
(async () => {
  await upsert({ github, context, core }, process.argv[2]);
  await upsert({ github, context, core }, process.argv[3]);
  console.log(JSON.stringify(comments));
})().catch((error) => { console.error(error); process.exit(1); });
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_pr_comment_is_posted_once_then_updated(tmp_path):
    first, second = tmp_path / "first.md", tmp_path / "second.md"
    first.write_text("## report one\n")
    second.write_text("## report two\n")
    result = subprocess.run(
        ["node", "-e", FAKE_GITHUB, str(ROOT / "scripts/pr_comment.js"), str(first), str(second)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    comments = json.loads(result.stdout)
    assert [c["id"] for c in comments] == [1, 2]  # the human's comment, then ONE report
    assert comments[0]["body"] == "looks good"
    assert comments[1]["body"].startswith("<!-- charlstm-retrain-report -->\n## report two\n")
    assert "actions/runs/42" in comments[1]["body"]
