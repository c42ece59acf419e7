"""`plan` and `run --dry-run` observe, they never act: no clone, no fetch, no `uv pip compile`,
nothing written to the cache. What is not known yet is said, with how to get it ahead; the
same plan comes out with no network and a read-only cache."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import git, git_init, write_project

PY = ".".join(map(str, sys.version_info[:2]))
DATA = b"a,b\n1,2\n"


def _data_repo(base: Path) -> str:
    """A Git repository whose ds.csv is tracked by a hand-written DVC 3 file (pins are read from
    Git alone), tagged v1, as a bare repository behind a file:// URL: no network needed."""
    source = write_project(base / "source", {"ds.csv.dvc": (
        f"outs:\n- md5: {hashlib.md5(DATA).hexdigest()}\n  size: {len(DATA)}\n  hash: md5\n"
        "  path: ds.csv\n")})
    git_init(source)
    git(source, "tag", "v1")
    git(base, "clone", "-q", "--bare", str(source), str(base / "source.git"))
    return (base / "source.git").as_uri()


def _project(base: Path) -> tuple[Path, str]:
    url = _data_repo(base)
    root = write_project(base / "proj", {
        "MLproject": f"""
            name: observed
            python_env: python_env.yaml
            data:
              ds: {{repo: "{url}", path: ds.csv, rev: v1}}
            entry_points:
              main:
                data: [ds]
                command: "python -c pass"
        """,
        "python_env.yaml": f'python: "{PY}"\ndependencies: [six]\n',
    })
    return git_init(root), url


def _mlproject(root: Path, cache: Path, *args: str, isolate: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLPROJECT_CACHE_DIR": str(cache)}
    command = [sys.executable, "-m", "mlproject.runner", *args]
    if isolate:
        # an empty network namespace, and the cache read-only in a private mount namespace
        script = (f"mount --bind {cache} {cache} && mount -o remount,bind,ro {cache} {cache} && "
                  f"exec {' '.join(command)}")
        command = ["unshare", "-n", "-m", "sh", "-c", script]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=60,
                          check=False)


def _cannot_isolate() -> str | None:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return "needs root and unshare(1) for an empty network namespace and a private mount"
    probe = subprocess.run(["unshare", "-n", "-m", "sh", "-c", "mount --bind -o ro / /mnt"],
                           capture_output=True, text=True, check=False)
    return None if probe.returncode == 0 else f"no private namespaces here: {probe.stderr}"


def _listing(cache: Path) -> list[str]:
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*"))


@pytest.mark.skipif(_cannot_isolate() is not None, reason=str(_cannot_isolate()))
def test_plan_offline_with_a_read_only_cache_is_the_same_plan(tmp_path: Path) -> None:
    root, url = _project(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    plain = _mlproject(root, cache, "plan", ".")
    assert plain.returncode == 0, plain.stderr
    # nothing acquired: no clone of the data repository, no resolution of the environment
    assert not (cache / "repos").exists() and not (cache / "resolved").exists()
    assert not (root / ".mlproject").exists()
    before = _listing(cache)
    isolated = _mlproject(root, cache, "plan", ".", isolate=True)
    assert isolated.returncode == 0, isolated.stderr
    assert isolated.stdout == plain.stdout
    assert "Traceback" not in isolated.stderr
    assert _listing(cache) == before  # the read-only run wrote nothing, and failed at nothing
    lines = plain.stdout.splitlines()
    resolve = (f"would resolve python_env.yaml with uv for Python {sys.version.split()[0]} "
               "(`mlproject lock` writes python_env.lock ahead)")
    fetch = f"would fetch {url} at v1 (not cloned yet; `mlproject data pull` fetches it ahead)"
    assert (f"   environment: python_env (python: python_env.yaml; not locked; {resolve})"
            in lines), plain.stdout
    assert f"   data ds: {fetch}" in lines
    assert f"before it runs, `run` will: environment python_env: {resolve}" in lines
    assert f"before it runs, `run` will: data ds: {fetch}" in lines
    # --dry-run observes as `plan` does, offline too
    dry = _mlproject(root, cache, "run", ".", "--dry-run", isolate=True)
    assert dry.returncode == 0 and dry.stdout == plain.stdout, dry.stderr
    as_json = _mlproject(root, cache, "plan", ".", "--json", isolate=True)
    plan: dict[str, Any] = json.loads(as_json.stdout)
    assert plan["pending"] == [f"environment python_env: {resolve}", f"data ds: {fetch}"]
    step = plan["steps"][0]
    assert step["environment"]["pending"] == resolve and step["environment"]["key"] is None
    assert step["data"]["ds"] == {"name": "ds", "path": "ds.csv", "rev": "v1", "repo": url,
                                  "md5": None, "pending": fetch}


def test_a_cloned_repository_is_read_and_a_missing_revision_is_not_fetched(
        cli: Callable[..., Any], tmp_path: Path) -> None:
    root, url = _project(tmp_path)
    pulled = cli("data", "pull", str(root))  # clones; the pull itself fails: no DVC remote here
    assert pulled.err.startswith(f"mlproject: cloning {url}\n"), pulled.err
    plan = json.loads(cli("plan", str(root), "--json").out)
    pin = plan["steps"][0]["data"]["ds"]
    assert pin["md5"] == hashlib.md5(DATA).hexdigest() and "pending" not in pin
    source = tmp_path / "source"
    (source / "other.txt").write_text("v2")
    git(source, "add", "-A")
    git(source, "commit", "-qm", "v2")
    git(source, "tag", "v2")
    git(source, "push", "-q", str(tmp_path / "source.git"), "v2")
    spec = root / "MLproject"
    spec.write_text(spec.read_text().replace("rev: v1", "rev: v2"))
    later = json.loads(cli("plan", str(root), "--json").out)
    assert later["steps"][0]["data"]["ds"]["pending"] == (
        f"would fetch {url} at v2 (not in its clone yet; `mlproject data pull` fetches it ahead)")
    status = cli("data", "status", str(root))
    assert status.code not in (0, 2, 70)  # not as pinned: the data is not there
    assert status.out.splitlines()[-1] == (
        f"ds: would fetch {url} at v2 (not in its clone yet; `mlproject data pull` fetches it "
        "ahead)")
