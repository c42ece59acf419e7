"""A pull request on a project made by `mlproject init`, as GitHub would check it out: shared by
tests/test_init.py (act, end to end) and benchmarks/bench_act.py.

main holds the init commit plus the lock of a first run; a branch `change` trains for another
number of epochs (400: as good; 200: one test flower fewer right, which fails the gate) and commits its lock; HEAD is their merge (first parent: the base), and everything a
fresh checkout would not have (the data, the DVC cache, outputs, run records) is removed, so
the workflow must pull the data from the project's DVC remote.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any


def mlproject(*args: str, cwd: Path) -> str:
    script = Path(sys.executable).parent / "mlproject"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "mlproject.runner"]
    done = subprocess.run([*command, *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f"mlproject {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return done.stdout


def git(repo: Path, *args: str) -> str:
    identity = {"GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
                "GIT_COMMITTER_NAME": "Dev", "GIT_COMMITTER_EMAIL": "dev@example.com"}
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True,
                          env={**os.environ, **identity}).stdout.strip()


def init_pull_request(where: Path, *, epochs: int = 400) -> tuple[Path, dict[str, Any]]:
    """The repository (HEAD at the merge) and the pull_request event act is given."""
    repo = where / "demo"
    mlproject("init", str(repo), cwd=where)
    mlproject("run", ".", cwd=repo)
    git(repo, "add", "mlproject.lock")
    git(repo, "commit", "-q", "-m", "the first lock")
    git(repo, "checkout", "-q", "-b", "change")
    spec = repo / "MLproject"
    text = spec.read_text()
    assert "epochs: {type: int, default: 300}" in text
    spec.write_text(text.replace("epochs: {type: int, default: 300}",
                                 f"epochs: {{type: int, default: {epochs}}}"))
    mlproject("run", ".", cwd=repo)
    git(repo, "commit", "-q", "-am", f"train for {epochs} epochs")
    head = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "main")
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "--detach")
    git(repo, "merge", "-q", "--no-ff", "-m", "Merge change into main", "change")
    git(repo, "clean", "-q", "-fdx")
    assert not (repo / "data" / "iris.csv").exists() and not (repo / ".dvc" / "cache").exists()
    shutil.rmtree(repo / ".mlproject", ignore_errors=True)
    event = {
        "number": 3,
        "pull_request": {"number": 3,
                         "head": {"ref": "change", "sha": head,
                                  "repo": {"full_name": "acme/iris", "fork": False}},
                         "base": {"ref": "main", "sha": base, "repo": {"full_name": "acme/iris"}}},
        "repository": {"full_name": "acme/iris"},
    }
    return repo, event
