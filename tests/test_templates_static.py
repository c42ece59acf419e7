"""The workflow templates and this repository's own workflows pass actionlint (with shellcheck
on every `run:`) and `zizmor --offline --pedantic` with no finding, and keep the hardening rules
those tools do not check the way STYLE.md item 12 wants them."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

CHECKOUT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted([*(CHECKOUT / "templates" / "github").glob("*.yml"),
                    *(CHECKOUT / ".github" / "workflows").glob("*.yml"),
                    *(CHECKOUT / "tests" / "act" / "workflows").glob("*.yml")])
IDS = [str(p.relative_to(CHECKOUT)) for p in WORKFLOWS]
PINNED = re.compile(r"^\s*(?:-\s+)?uses:\s+[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+)*$")


def tool(name: str) -> str:
    found = shutil.which(name, path=os.path.dirname(sys.executable)) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed here (the test extra has it)")
    return found


def env_with_tools() -> dict[str, str]:
    # actionlint runs shellcheck only when it finds it on PATH (else silently not)
    return {**os.environ, "PATH": os.pathsep.join([os.path.dirname(tool("shellcheck")),
                                                   os.environ.get("PATH", "")])}


def test_there_are_templates() -> None:
    assert {"pr.yml", "promote.yml"} <= {p.name for p in WORKFLOWS}


@pytest.mark.parametrize("path", WORKFLOWS, ids=IDS)
def test_actionlint_with_shellcheck_finds_nothing(path: Path) -> None:
    done = subprocess.run([tool("actionlint"), "-no-color", str(path)], capture_output=True, text=True,
                          env=env_with_tools(), cwd=CHECKOUT)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_actionlint_does_run_shellcheck(tmp_path: Path) -> None:
    """Otherwise the test above would pass on a shell bug."""
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo $X\n")
    done = subprocess.run([tool("actionlint"), "-no-color", str(bad)], capture_output=True, text=True,
                          env=env_with_tools())
    assert done.returncode == 1 and "SC2086" in done.stdout


@pytest.mark.parametrize("path", WORKFLOWS, ids=IDS)
def test_zizmor_pedantic_finds_nothing(path: Path) -> None:
    done = subprocess.run([tool("zizmor"), "--offline", "--pedantic", "--no-progress", str(path)],
                          capture_output=True, text=True, cwd=CHECKOUT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No findings to report" in done.stdout


def _load(path: Path) -> dict[Any, Any]:
    loaded: dict[Any, Any] = yaml.safe_load(path.read_text())
    return loaded


@pytest.mark.parametrize("path", WORKFLOWS, ids=IDS)
def test_hardening_rules(path: Path) -> None:
    text = path.read_text()
    workflow = _load(path)
    triggers = workflow.get(True) or workflow.get("on")  # YAML 1.1 reads `on` as true
    assert triggers and "pull_request_target" not in triggers
    assert workflow["permissions"] == {}
    assert "concurrency" in workflow
    for name, job in workflow["jobs"].items():
        assert "timeout-minutes" in job, f"job {name} has no timeout"
        for step in job.get("steps", []):
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False
    uses = [line for line in text.splitlines() if re.match(r"^\s*(-\s+)?uses:", line)]
    assert uses and all(PINNED.match(line) for line in uses), uses
    # `${{ }}` never in a run: script (zizmor's template-injection catches the untrusted ones;
    # the templates keep even the trusted ones in env:)
    for job in workflow["jobs"].values():
        for step in job.get("steps", []):
            assert "${{" not in step.get("run", ""), step


def test_a_promotion_is_never_cancelled_and_a_stale_check_is() -> None:
    templates = CHECKOUT / "templates" / "github"
    assert _load(templates / "promote.yml")["concurrency"]["cancel-in-progress"] is False
    assert _load(templates / "pr.yml")["concurrency"]["cancel-in-progress"] is True
