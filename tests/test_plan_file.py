"""A plan is a complete value: `plan --json > FILE` in one checkout, `run --plan FILE` in another
(a clone at the same commit, another process) runs exactly that plan, and refuses it, saying
what moved, when the code, a lock or a data pin no longer matches. Plan files are read strictly."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import git, git_init, write_project
from mlproject.runner.facts.observe import observe_facts
from mlproject.runner.plan import Plan
from mlproject.runner.planfile import PlanFileError, decode
from mlproject.runner.resolve import Overrides, resolve
from mlproject.runner.state import records
from mlproject.spec import load

PY = ".".join(map(str, sys.version_info[:2]))
WRITES = """
    name: moved
    entry_points:
      main:
        parameters: {out: {type: path, default: out.txt}}
        command: "python -c \\"import sys; open(sys.argv[1], 'w').write('done')\\" {out}"
        outputs: [out.txt]
"""
LOCKED = """
    python_env: requirements.txt
    entry_points:
      main:
        command: "python -c pass"
"""
PIN = "six==1.16.0 --hash=sha256:" + "1" * 64 + "\n"


def _mlproject(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A real process of its own for each step: the plan travels as a file, nothing else."""
    return subprocess.run([sys.executable, "-m", "mlproject.runner", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ})


def _planned(tmp_path: Path, files: dict[str, str]) -> tuple[Path, Path, dict[str, Any]]:
    """The project planned in `a/`, a clone of it at the same commit in `b/`, and the plan."""
    a = git_init(write_project(tmp_path / "a", files))
    made = _mlproject(a, "plan", "--json")
    assert made.returncode == 0, made.stderr
    (tmp_path / "plan.json").write_text(made.stdout)
    git(tmp_path, "clone", "-q", str(a), str(tmp_path / "b"))
    return a, tmp_path / "b", json.loads(made.stdout)


def test_a_plan_made_in_one_clone_runs_in_another(tmp_path: Path) -> None:
    a, b, plan = _planned(tmp_path, {"MLproject": WRITES})
    assert plan["format"] == "mlproject.plan/2" and plan["project"] == str(a)
    done = _mlproject(b, "run", "--plan", str(tmp_path / "plan.json"))
    assert done.returncode == 0, done.stderr
    # the path parameter inside the project moved with it: written in b, not in a
    assert (b / "out.txt").read_text() == "done" and not (a / "out.txt").exists()
    assert f"$ python -c \"import sys; open(sys.argv[1], 'w').write('done')\" {b}/out.txt" in (
        done.stderr)
    [record] = records.list_runs(str(b))
    # exactly that plan: the same fingerprint (no root in it), recorded in the clone
    assert record["fingerprint"] == plan["steps"][0]["fingerprint"]
    assert not (a / ".mlproject").exists()
    # and again: up to date, by the fingerprint the plan holds
    again = _mlproject(b, "run", "--plan", str(tmp_path / "plan.json"))
    assert again.returncode == 0 and "main: up to date" in again.stderr, again.stderr


def test_a_changed_file_is_refused(tmp_path: Path) -> None:
    a, b, plan = _planned(tmp_path, {"MLproject": WRITES, "code.py": "x = 1\n"})
    (b / "code.py").write_text("x = 2\n")
    refused = _mlproject(b, "run", "--plan", str(tmp_path / "plan.json"))
    assert refused.returncode == 2
    commit = plan["steps"][0]["code"]["commit"][:12]
    old = plan["steps"][0]["code"]["digest"][:12]
    lines = refused.stderr.splitlines()
    assert lines[0] == (f"mlproject: error: {tmp_path}/plan.json: the plan no longer matches {b} "
                        f"(it was made in {a}):")
    assert lines[1].startswith(f"  main: the code state: git {commit} ({old}) -> git {commit} "
                               "+ 1 uncommitted ("), lines
    assert lines[2] == "make the plan again (`mlproject plan --json`) to run what is here"
    assert len(lines) == 3 and not (b / "out.txt").exists() and not (b / ".mlproject").exists()


def test_a_changed_lock_is_refused_saying_old_and_new_keys(tmp_path: Path) -> None:
    _a, b, plan = _planned(tmp_path, {"MLproject": LOCKED, "requirements.txt": PIN})
    env = plan["steps"][0]["environment"]
    assert env["kind"] == "python" and env["pending"] is None
    assert env["data"]["python"] is None and env["data"]["version"] == sys.version.split()[0]
    assert env["data"]["pins"] == [{"name": "six", "version": "1.16.0",
                                    "hashes": ["sha256:" + "1" * 64], "marker": None,
                                    "extras": []}]
    (b / "requirements.txt").write_text(PIN.replace("1" * 64, "2" * 64))
    git(b, "commit", "-qam", "another lock")
    refused = _mlproject(b, "run", "--plan", str(tmp_path / "plan.json"))
    assert refused.returncode == 2
    fresh = json.loads(_mlproject(b, "plan", "--json").stdout)
    new = fresh["steps"][0]["environment"]["key"]
    assert (f"  main: environment python_env: key {env['key'][:12]} -> {new[:12]} (its lock or "
            "inputs changed)") in refused.stderr.splitlines(), refused.stderr


def test_an_interpreter_of_another_version_is_refused_before_anything_runs(tmp_path: Path) -> None:
    _a, b, plan = _planned(tmp_path, {"MLproject": LOCKED, "requirements.txt": PIN})
    plan["steps"][0]["environment"]["data"]["version"] = "3.0.1"  # not in the fingerprint
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    refused = _mlproject(b, "run", "--plan", str(tmp_path / "plan.json"))
    assert refused.returncode == 2
    lines = refused.stderr.splitlines()
    assert lines[0] == f"mlproject: error: {tmp_path}/plan.json: the plan cannot run on this machine:"
    assert lines[1].startswith("  environment python_env: the plan was made with Python 3.0.1 "
                               "(for python 3.0); this machine has "), lines
    assert lines[1].endswith(": install Python 3.0.1 here, or make the plan on this machine")
    assert not (b / ".mlproject").exists()


def _dvc(md5: str) -> str:
    return f"outs:\n- md5: {md5}\n  size: 3\n  hash: md5\n  path: ds.csv\n"


def test_a_moved_data_pin_is_refused(tmp_path: Path) -> None:
    first, second = hashlib.md5(b"one").hexdigest(), hashlib.md5(b"two").hexdigest()
    _a, b, plan = _planned(tmp_path, {"MLproject": """
        data: {ds: {path: ds.csv}}
        entry_points:
          main: {data: [ds], command: "cat ds.csv"}
    """, "ds.csv.dvc": _dvc(first), ".gitignore": "/ds.csv\n"})
    assert plan["steps"][0]["data"]["ds"]["md5"] == first
    (b / "ds.csv.dvc").write_text(_dvc(second))
    git(b, "commit", "-qam", "new data")
    refused = _mlproject(b, "run", "--plan", str(tmp_path / "plan.json"))
    assert refused.returncode == 2
    assert f"  main: data ds: md5 {first} -> {second}" in refused.stderr.splitlines(), refused.stderr


def test_plan_json_round_trips_to_the_same_value(tmp_path: Path) -> None:
    root = git_init(write_project(tmp_path / "p", {"MLproject": WRITES}))
    spec = load(root)
    plan = resolve(spec, Overrides("main", ("out=elsewhere.txt",)), observe_facts(str(root), spec))
    assert Plan.from_json(json.loads(json.dumps(plan.to_json()))) == plan


@pytest.mark.parametrize(("edit", "message"), [
    (lambda p: p.update(format="mlproject.plan/9"),
     "format: mlproject.plan/9 is not mlproject.plan/2, the format this mlproject reads: make "
     "the plan again with this version"),
    (lambda p: p.update(format="other"), "format: expected 'mlproject.plan/2': not a plan of mlproject"),
    (lambda p: p["steps"][0].update(needs="prep"), "steps[0].needs: expected list, not \"prep\""),
    (lambda p: p["steps"][0].pop("command"),
     "steps[0]: not the fields of mlproject.plan/2 (missing command)"),
    (lambda p: p["steps"][0]["resources"].update(gpu="2"),
     "steps[0].resources.gpu: expected int or null, not \"2\""),
    (lambda p: p["steps"][0]["environment"].update(kind="slurm"),
     "steps[0].environment.kind: unknown environment kind 'slurm' (known: local, python, conda, "
     "docker)"),
    (lambda p: p["steps"][0].update(command="rm -rf /"),
     "steps[0].fingerprint: does not match its basis: the file was edited"),
])
def test_a_plan_file_of_another_shape_is_a_clear_error(
        cli: Callable[..., Any], tmp_path: Path, edit: Callable[[dict[str, Any]], None],
        message: str) -> None:
    root = git_init(write_project(tmp_path / "p", {"MLproject": WRITES}))
    plan = json.loads(cli("plan", str(root), "--json").out)
    edit(plan)
    if "fingerprint" in message:  # the command is in the basis: edit it there too, not the digest
        plan["steps"][0]["fingerprint_basis"]["fixed"]["command"] = "rm -rf /"
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    result = cli("run", "--plan", str(path), str(root))
    assert (result.code, result.err) == (2, f"mlproject: error: {path}: {message}\n")
    with pytest.raises(PlanFileError):
        decode(plan, str(path))


def test_what_is_not_a_plan_file(cli: Callable[..., Any], tmp_path: Path) -> None:
    root = git_init(write_project(tmp_path / "p", {"MLproject": WRITES}))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = cli("run", "--plan", str(bad), str(root))
    assert result.code == 2
    assert result.err.startswith(f"mlproject: error: {bad}: not a plan: not JSON (")
    assert result.err.endswith("); write one with `mlproject plan --json > FILE`\n")
    missing = cli("run", "--plan", str(tmp_path / "none.json"), str(root))
    assert (missing.code, missing.err) == (2, f"mlproject: error: {tmp_path}/none.json: cannot "
                                              "read the plan: No such file or directory\n")
    bad.write_text("[]")
    assert cli("run", "--plan", str(bad), str(root)).err == (
        f"mlproject: error: {bad}: plan: expected an object\n")
    both = cli("run", "--plan", str(bad), str(root), "-e", "main2", "-P", "x=1")
    assert (both.code, both.err) == (2, "mlproject: error: --plan: -e, -P cannot be given with a "
                                        "plan: it holds its entry point, parameters and environment\n")


def test_a_plan_with_an_environment_to_resolve_acquires_it_first(tmp_path: Path) -> None:
    """`plan` resolved nothing (it said what `run` would do); `run --plan` in the clone resolves
    it (an empty requirements list: uv needs no network for it), then builds and runs."""
    _a, b, plan = _planned(tmp_path, {"MLproject": """
        python_env: python_env.yaml
        entry_points:
          main:
            command: "python -c \\"import sys; open('prefix.txt', 'w').write(sys.prefix)\\""
    """, "python_env.yaml": f'python: "{PY}"\ndependencies: []\n'})
    cache = Path(os.environ["MLPROJECT_CACHE_DIR"])
    assert plan["pending"] == [
        f"environment python_env: would resolve python_env.yaml with uv for Python "
        f"{sys.version.split()[0]} (`mlproject lock` writes python_env.lock ahead)"]
    assert not (cache / "resolved").exists()
    done = _mlproject(b, "run", "--plan", str(tmp_path / "plan.json"))
    assert done.returncode == 0, done.stderr
    assert "resolving it with uv for Python" in done.stderr
    assert list((cache / "resolved").iterdir())
    assert (b / "prefix.txt").read_text().startswith(str(cache / "envs"))
    [record] = records.list_runs(str(b))
    assert record["fingerprint"] == plan["steps"][0]["fingerprint"]


def test_a_conda_environment_travels_as_its_packages_with_urls_and_hashes(tmp_path: Path) -> None:
    pytest.importorskip("rattler", reason="py-rattler is not installed")
    import condachannel as cc
    from mlproject.runner.envs import condalock

    channel = cc.make_channel(tmp_path / "channel", [cc.hello(), cc.greeting()])
    files = {"MLproject": """
        conda_env: environment.yml
        entry_points:
          main:
            command: "hello > said.txt"
    """}
    root = write_project(tmp_path / "a", files)
    env_file = cc.write_environment(root / "environment.yml", channel)
    cc.write_lock(root / "conda-lock.yml", channel, condalock.current_platform(), env_file)
    git_init(root)
    made = _mlproject(root, "plan", "--json")
    assert made.returncode == 0, made.stderr
    plan = json.loads(made.stdout)
    data = plan["steps"][0]["environment"]["data"]
    assert data["platform"] == condalock.current_platform() and data["lock"] == "conda-lock.yml"
    assert [(p["name"], p["version"]) for p in data["conda"]] == [("hello", "1.0"), ("greeting", "2.0")]
    assert all(p["url"].startswith("file://") and len(p["sha256"]) == 64 for p in data["conda"])
    (tmp_path / "plan.json").write_text(made.stdout)
    git(tmp_path, "clone", "-q", str(root), str(tmp_path / "b"))
    done = _mlproject(tmp_path / "b", "run", "--plan", str(tmp_path / "plan.json"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "b" / "said.txt").read_text() == "hello\n"
    # a plan for another platform is refused before anything runs
    data["platform"] = "osx-arm64" if data["platform"] != "osx-arm64" else "linux-64"
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    refused = _mlproject(tmp_path / "b", "run", "--plan", str(tmp_path / "plan.json"))
    assert refused.returncode == 2
    assert refused.stderr.splitlines()[1] == (
        f"  environment conda_env: the plan installs packages for {data['platform']}, and this "
        f"machine is {condalock.current_platform()}: make the plan for this platform")


def test_a_plan_with_data_to_fetch_fetches_it_first(tmp_path: Path) -> None:
    """Data of another repository not cloned when planned: `run --plan` clones it, pins it,
    and (with --pull) brings it from that repository's DVC remote, a local directory."""
    data = b"a,b\n1,2\n"
    md5 = hashlib.md5(data).hexdigest()
    remote = tmp_path / "remote"
    (remote / "files" / "md5" / md5[:2]).mkdir(parents=True)
    (remote / "files" / "md5" / md5[:2] / md5[2:]).write_bytes(data)
    source = git_init(write_project(tmp_path / "source", {
        "ds.csv.dvc": f"outs:\n- md5: {md5}\n  size: {len(data)}\n  hash: md5\n  path: ds.csv\n",
        ".dvc/config": f"[core]\n    remote = r\n['remote \"r\"']\n    url = {remote}\n"}))
    git(source, "tag", "v1")
    git(tmp_path, "clone", "-q", "--bare", str(source), str(tmp_path / "source.git"))
    url = (tmp_path / "source.git").as_uri()
    _a, b, plan = _planned(tmp_path, {"MLproject": f"""
        data:
          ds: {{repo: "{url}", path: ds.csv, rev: v1}}
        entry_points:
          main:
            data: [ds]
            command: "cp {{data.ds}} copy.csv"
    """})
    assert plan["steps"][0]["data"]["ds"]["pending"].startswith(f"would fetch {url} at v1")
    cache = Path(os.environ["MLPROJECT_CACHE_DIR"])
    assert not (cache / "repos").exists()
    done = _mlproject(b, "run", "--plan", str(tmp_path / "plan.json"), "--pull")
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(f"mlproject: cloning {url}\n"), done.stderr
    assert (b / "copy.csv").read_bytes() == data
    [record] = records.list_runs(str(b))
    assert record["data"]["ds"]["md5"] == md5  # the pin acquired, recorded


def test_a_plan_file_that_is_no_file_or_too_big_is_refused_unread(
        cli: Callable[..., Any], tmp_path: Path) -> None:
    """A device, a FIFO, a directory or a huge file: refused at once, never read whole (a
    remote worker reads what it is handed)."""
    root = git_init(write_project(tmp_path / "p", {"MLproject": WRITES}))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # nobody writes it: a read would block for ever
    big = tmp_path / "big.json"
    with open(big, "wb") as handle:
        handle.truncate((64 << 20) + 1)  # sparse: costs no disk
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    expected = {
        "/dev/zero": "mlproject: error: /dev/zero: not a plan: not a regular file\n",
        str(fifo): f"mlproject: error: {fifo}: not a plan: not a regular file\n",
        str(tmp_path): f"mlproject: error: {tmp_path}: cannot read the plan: Is a directory\n",
        str(big): f"mlproject: error: {big}: not a plan: larger than 64 MiB\n",
    }
    for path, message in expected.items():
        result = cli("run", "--plan", path, str(root))
        assert (result.code, result.err) == (2, message)
    nested = cli("run", "--plan", str(deep), str(root))
    assert nested.code == 2 and nested.err.startswith(f"mlproject: error: {deep}: not a plan: not JSON")
    assert not (root / "out.txt").exists() and not (root / ".mlproject").exists()
