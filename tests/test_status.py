"""`mlproject status`: each step up to date with mlproject.lock, stale with what changed (old ->
new), or never run; `--check` for CI (exit 1 unless all are up to date), `--json`; it only
observes, and a committed lock stays up to date in a fresh clone."""
from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import git, git_init, write_project
from mlproject.runner.gitops import staleness

PIPELINE = {
    "MLproject": """
        entry_points:
          prepare:
            parameters: {n: {type: float, default: 2}}
            command: "python -c \\"open('data.txt', 'w').write(open('prep.src').read() * int({n}))\\""
            outputs: [data.txt]
          main:
            needs: [prepare]
            command: "python -c \\"open('metrics.yaml', 'w').write('acc: 0.5')\\""
            metrics: metrics.yaml
          lint:
            command: "python -c \\"print('ok')\\""
    """,
    "train.py": "print('code')\n",
    ".gitignore": "data.txt\nmetrics.yaml\nprep.src\n.mlproject/\n",
    "prep.src": "abc",
}


def _status(cli: Callable[..., Any], root: Path, *args: str, code: int = 0) -> str:
    result = cli("status", str(root), *args)
    assert result.code == code, result.out + result.err
    return str(result.out)


def _committed(cli: Callable[..., Any], root: Path) -> None:
    result = cli("run", str(root))
    assert result.code == 0, result.err
    result = cli("run", str(root), "-e", "lint")
    assert result.code == 0, result.err
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "trained")


def test_never_run_then_up_to_date_once_run_and_committed(
        cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = git_init(project(PIPELINE))
    assert _status(cli, root, "--check", code=1) == (
        "prepare: never run\nmain: never run\nlint: never run\n"
        "note: there is no mlproject.lock yet: `mlproject run` writes it\n"
        "3 of 3 steps not up to date with mlproject.lock: `mlproject run` runs them and "
        "writes the lock\n")
    _committed(cli, root)  # code and lock in one commit: the digest does not move
    assert git(root, "status", "--porcelain") == ""
    assert _status(cli, root, "--check") == ("prepare: up to date\nmain: up to date\n"
                                             "lint: up to date\n"
                                             "every step is up to date with mlproject.lock\n")
    (root / "train.py").write_text("print('changed')\n")
    out = _status(cli, root, "--check", code=1)
    lines = out.splitlines()
    assert lines[0] == "prepare: stale"
    assert lines[1].startswith("  code: ") and lines[1].endswith(" (the project's files changed)")
    assert lines[-1] == ("3 of 3 steps not up to date with mlproject.lock: `mlproject run` runs "
                         "them and writes the lock")
    assert _status(cli, root) == out  # without --check: the same words, exit 0


def test_stale_says_which_parameter_and_which_output_changed(
        cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = git_init(project(PIPELINE))
    _committed(cli, root)
    old = hashlib.md5(b"abcabc").hexdigest()[:12]
    assert _status(cli, root, "-e", "prepare", "-P", "n=3", "--check", code=1) == (
        "prepare: stale\n  parameter n: '2' -> '3'\n"
        "1 of 1 step not up to date with mlproject.lock: `mlproject run` runs them and "
        "writes the lock\n")
    (root / "data.txt").write_text("tampered")
    new = hashlib.md5(b"tampered").hexdigest()[:12]
    assert _status(cli, root, "-e", "main") == (
        "prepare: stale\n"
        f"  output data.txt: {old} -> {new} (changed since the locked run)\n"
        "main: stale\n"
        f"  upstream prepare: output data.txt: {old} -> {new}\n"
        "2 of 2 steps not up to date with mlproject.lock: `mlproject run` runs them and "
        "writes the lock\n")


def test_a_fresh_clone_without_outputs_is_up_to_date(
        cli: Callable[..., Any], project: Callable[..., Path], tmp_path: Path) -> None:
    root = git_init(project(PIPELINE))
    _committed(cli, root)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(root), str(clone))
    assert _status(cli, clone, "--check") == (
        "prepare: up to date (outputs not in the workspace: data.txt)\nmain: up to date\n"
        "lint: up to date\nevery step is up to date with mlproject.lock\n")
    (clone / "train.py").write_text("print('changed')\n")
    _status(cli, clone, "--check", code=1)  # what CI proves: the lock matches the code


def test_a_data_pin_that_moved_is_named_with_its_sizes(
        cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    def pin(data: bytes) -> None:
        (root / "train.csv").write_bytes(data)
        (root / "train.csv.dvc").write_text(
            f"outs:\n- md5: {hashlib.md5(data).hexdigest()}\n  size: {len(data)}\n"
            "  hash: md5\n  path: train.csv\n")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "data")

    root = git_init(project({
        "MLproject": """
            data:
              train: {path: train.csv}
            entry_points:
              main:
                data: [train]
                command: "python -c \\"print(open('train.csv').read())\\""
        """,
        ".gitignore": "/train.csv\n.mlproject/\n",
    }))
    pin(b"a,b\n1,2\n")
    assert cli("run", str(root)).code == 0
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "lock")
    _status(cli, root, "--check")
    pin(b"a,b\n1,2\n3,4\n")
    old, new = (hashlib.md5(b).hexdigest()[:12] for b in (b"a,b\n1,2\n", b"a,b\n1,2\n3,4\n"))
    lines = _status(cli, root, "--check", code=1).splitlines()
    assert lines[0] == "main: stale" and lines[2] == f"  data train: md5 {old} -> {new}, size 8 -> 12"
    assert lines[1].startswith("  code: ")  # the .dvc file is code too


def test_json_is_for_machines(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = git_init(project(PIPELINE))
    _committed(cli, root)
    (root / "train.py").write_text("x = 1\n")
    data = json.loads(_status(cli, root, "--json", "-e", "lint"))
    assert data["format"] == "mlproject.status/1" and data["current"] is False
    assert data["lock"] == "mlproject.lock" and data["orphans"] == [] and data["notes"] == []
    [lint] = data["steps"]
    assert lint["entry_point"] == "lint" and lint["state"] == "stale"
    assert lint["locked_fingerprint"] != lint["fingerprint"]
    assert len(lint["reasons"]) == 1 and lint["reasons"][0].startswith("code: ")


def test_status_only_observes(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = git_init(project(PIPELINE))
    _committed(cli, root)
    (root / "data.txt").write_text("other")

    def tree() -> dict[str, int]:
        return {str(p): p.stat().st_mtime_ns for p in root.rglob("*") if ".git" not in p.parts}

    before = tree()
    _status(cli, root)
    assert tree() == before


def test_an_entry_point_the_project_dropped_is_named(
        cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = git_init(project(PIPELINE))
    _committed(cli, root)
    spec = (root / "MLproject").read_text()
    (root / "MLproject").write_text(spec[:spec.index("  lint:")])
    out = _status(cli, root)
    assert "mlproject.lock also holds lint, which the project no longer declares\n" in out
    assert "lint:" not in out.split("\n", 2)[-1].split("mlproject.lock also")[0]


def test_status_costs_about_what_plan_costs(cli: Callable[..., Any],
                                            project: Callable[..., Path]) -> None:
    root = git_init(project(PIPELINE))
    _committed(cli, root)

    def best(*args: str) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            assert cli(*args).code == 0
            times.append(time.perf_counter() - start)
        return min(times)

    plan, status = best("plan", str(root), "-e", "main"), best("status", str(root))
    # every step (3) against plan's 2, plus the lock and the outputs hashed: same order
    assert status < plan * 3 + 0.05, (status, plan)


def test_environment_reasons_name_the_packages() -> None:
    old = {"name": "py", "kind": "python", "input": "a", "digest": "x",
           "packages": {"numpy": "1.26.0", "scipy": "1.11.0", "torch": "2.1.0"}}
    new = {**old, "input": "b", "digest": "y",
           "packages": {"numpy": "2.0.0", "torch": "2.1.0", "pandas": "2.2.0"}}
    assert staleness._environment(old, new) == ([
        "environment py: package numpy: 1.26.0 -> 2.0.0",
        "environment py: package pandas: added (2.2.0)",
        "environment py: package scipy: removed (was 1.11.0)",
    ], [])
    assert staleness._environment(old, {**old, "name": "gpu"}) == (
        ["environment: py (python) -> gpu (python)"], [])


def test_a_local_environment_is_judged_by_python_version_and_platform() -> None:
    old = {"name": "local", "kind": "local", "input": "a", "digest": None, "packages": {},
           "python": "3.11.4", "platform": "linux-x86_64"}
    # another interpreter path, other distributions, another patch release: a note
    assert staleness._environment(old, {**old, "input": "b", "python": "3.11.9"}) == (
        [], [staleness.LOCAL_NOTE])
    assert staleness._environment(old, {**old, "input": "b", "python": "3.12.1",
                                        "platform": "darwin-arm64"}) == ([
        "environment local: Python 3.11 -> 3.12",
        "environment local: platform linux-x86_64 -> darwin-arm64"], [])


def test_other_installed_distributions_are_a_note_not_stale(
        cli: Callable[..., Any], project: Callable[..., Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    root = git_init(project(PIPELINE))
    _committed(cli, root)
    extra = tmp_path / "site"
    (extra / "newly_installed-1.0.dist-info").mkdir(parents=True)
    # another distribution where the interpreter imports from: what `pip install` on a CI
    # runner does (sys.path[0] is the script's own directory, which a step never sees)
    monkeypatch.setattr(sys, "path", [sys.path[0], str(extra), *sys.path[1:]])
    assert _status(cli, root, "--check", "-e", "main") == (
        "prepare: up to date\n"
        f"  note: {staleness.LOCAL_NOTE}\n"
        "main: up to date\n"
        f"  note: {staleness.LOCAL_NOTE}\n"
        "every step is up to date with mlproject.lock\n")


@pytest.mark.slow
def test_an_environment_that_moved_is_named_by_its_packages(
        cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    py = ".".join(map(str, sys.version_info[:2]))
    root = git_init(project({
        "MLproject": f"""
            environments:
              train: {{python: "{py}", requirements: requirements.txt}}
            entry_points:
              main:
                environment: train
                command: "python -c 'import six'"
        """,
        "requirements.txt": "six\n",
        "requirements.lock": "six==1.16.0 --hash=sha256:8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354"
                             "b01111771326f8aa26e0254\n",
        ".gitignore": ".mlproject/\n",
    }))
    assert cli("run", str(root)).code == 0  # installs six from the package index
    env = json.loads((root / "mlproject.lock").read_text())["entries"]["main"]["environment"]
    assert env["packages"] == {"six": "1.16.0"} and env["kind"] == "python" and env["digest"]
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "lock")
    _status(cli, root, "--check")
    (root / "requirements.lock").write_text(
        "six==1.17.0 --hash=sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274\n")
    lines = _status(cli, root, "--check", code=1).splitlines()
    assert lines[:3] == ["main: stale", lines[1], "  environment train: package six: 1.16.0 -> 1.17.0"]
    assert lines[1].startswith("  code: ")  # the lock file is a file of the project too


def test_data_of_another_repository_not_fetched_here_is_a_note(
        cli: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"a,b\n1,2\n"
    md5 = hashlib.md5(data).hexdigest()
    remote = tmp_path / "remote" / "files" / "md5" / md5[:2]
    remote.mkdir(parents=True)
    (remote / md5[2:]).write_bytes(data)  # a local DVC remote, laid out as DVC 3 does
    source = write_project(tmp_path / "source", {
        ".dvc/config": f"[core]\n    remote = r\n['remote \"r\"']\n    url = {tmp_path / 'remote'}\n",
        "ds.csv.dvc": f"outs:\n- md5: {md5}\n  size: 8\n  hash: md5\n  path: ds.csv\n"})
    git_init(source)
    git(source, "tag", "v1")
    root = git_init(write_project(tmp_path / "proj", {"MLproject": f"""
        data:
          ds: {{repo: "{source.as_uri()}", path: ds.csv, rev: v1}}
        entry_points:
          main:
            data: [ds]
            command: "python -c pass"
    """}))
    assert cli("run", str(root), "--pull").code == 0
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "lock")
    _status(cli, root, "--check")
    monkeypatch.setenv("MLPROJECT_CACHE_DIR", str(tmp_path / "fresh"))  # a CI runner's cache
    assert _status(cli, root, "--check") == (
        "main: up to date\n"
        f"  note: data ds: not fetched here (would fetch {source.as_uri()} at v1 (not cloned yet; "
        f"`mlproject data pull` fetches it ahead)): the lock's pin (md5 {md5[:12]}) is taken as "
        "it is\n"
        "every step is up to date with mlproject.lock\n")
    (root / "MLproject").write_text((root / "MLproject").read_text().replace("rev: v1",
                                                                             "rev: v2"))
    assert "  data ds: not pinned here (would fetch" in _status(cli, root, "--check", code=1)


def test_a_step_after_one_without_outputs_takes_its_locked_fingerprint(
        cli: Callable[..., Any], project: Callable[..., Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    root = git_init(project({"MLproject": """
        entry_points:
          check:
            command: "python -c pass"
          main:
            needs: [check]
            command: "python -c pass"
    """, ".gitignore": ".mlproject/\n"}))
    assert cli("run", str(root)).code == 0
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "lock")
    extra = tmp_path / "site"
    (extra / "newly_installed-1.0.dist-info").mkdir(parents=True)
    monkeypatch.setattr(sys, "path", [sys.path[0], str(extra), *sys.path[1:]])
    out = _status(cli, root, "--check")
    assert out.splitlines()[::2] == ["check: up to date", "main: up to date",
                                     "every step is up to date with mlproject.lock"]
    (root / "MLproject").write_text((root / "MLproject").read_text().replace(
        "command: \"python -c pass\"\n  main", "command: \"python -c 'pass'\"\n  main"))
    lines = _status(cli, root, code=0).splitlines()
    assert lines[0] == "check: stale" and "main: stale" in lines
    assert any(line.startswith("  upstream check: ") for line in lines)


def test_a_python_environment_built_for_another_patch_release_is_a_note() -> None:
    """A lock made on a laptop's 3.11.7 and checked on a CI runner's 3.11.9: the same pins for
    the same X.Y and platform are what the lock can prove; another X.Y or other pins are not."""
    old = {"name": "py", "kind": "python", "input": "key-a", "digest": "pins", "packages": {},
           "python": "3.11.7", "platform": "linux-x86_64"}
    assert staleness._environment(old, {**old, "input": "key-b", "python": "3.11.9"}) == (
        [], ["environment py: the lock's pins were built for Python 3.11.7, this machine has "
             "3.11.9: the same pins, the same X.Y"])
    # another X.Y, another platform, other pins, or a lock that did not say: stale
    for moved in ({"python": "3.12.1"}, {"platform": "darwin-arm64"}, {"digest": "other"}):
        said, _ = staleness._environment(old, {**old, "input": "key-b", **moved})
        assert said, moved
    unsaid = {k: v for k, v in old.items() if k != "python"}
    assert staleness._environment(unsaid, {**old, "input": "key-b"})[0]
