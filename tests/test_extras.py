"""DVC and conda-lock are extras: the common path never imports them, and a feature that needs a
missing one says which extra to install (exit 2, one line), never a traceback.

Each case runs the real CLI in a new process where the extra's module is made unimportable
(`sys.modules[name] = None`, as a core install would have it), and reports which top-level
modules that process loaded. The DVC files are written by hand, in DVC 3's format: this is what
mlproject reads natively (tests/test_data.py checks the same reading against real DVC).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import git_init, write_project

CONTENT = b"a,b\n1,2\n"
MD5 = hashlib.md5(CONTENT).hexdigest()
# `mlproject ARGS...` with some modules made unimportable; which top-level modules it loaded is
# written to a file as JSON, whatever the outcome.
WRAPPER = """\
import json, sys
blocked, report, args = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3:]
for name in blocked:
    sys.modules[name] = None
from mlproject.runner.cli.main import main
try:
    code = main(args)
finally:
    with open(report, "w") as out:
        json.dump(sorted({m.split(".")[0] for m, v in list(sys.modules.items()) if v is not None}), out)
sys.exit(code)
"""


@dataclass(frozen=True)
class Done:
    code: int
    out: str
    err: str
    loaded: frozenset[str]


def mlproject(*args: str, cwd: Path, blocked: tuple[str, ...] = ("dvc", "conda_lock"),
              path: str | None = None) -> Done:
    report = cwd.parent / f"modules-{os.getpid()}.json"
    env = {**os.environ, "PATH": path if path is not None else os.environ["PATH"]}
    done = subprocess.run([sys.executable, "-c", WRAPPER, json.dumps(blocked), str(report), *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    loaded = frozenset(json.loads(report.read_text())) if report.exists() else frozenset()
    report.unlink(missing_ok=True)
    return Done(done.returncode, done.stdout, done.stderr, loaded)


def dvc_project(root: Path, remote_url: str) -> Path:
    """A Git repository with DVC 3's files for data.csv, its default remote at `remote_url`."""
    write_project(root, {
        "MLproject": """
            name: pinned
            data:
              raw: {path: data.csv}
            entry_points:
              main:
                data: [raw]
                command: "cat {data.raw}"
            """,
        ".dvc/config": f"[core]\n    remote = storage\n['remote \"storage\"']\n    url = {remote_url}\n",
        ".dvc/.gitignore": "/config.local\n/tmp\n/cache\n",
        ".gitignore": "/data.csv\n",
        "data.csv.dvc": f"outs:\n- md5: {MD5}\n  size: {len(CONTENT)}\n  hash: md5\n  path: data.csv\n",
    })
    return git_init(root)


def local_remote(base: Path) -> Path:
    remote = base / "remote"
    obj = remote / "files" / "md5" / MD5[:2] / MD5[2:]
    obj.parent.mkdir(parents=True)
    obj.write_bytes(CONTENT)
    return remote


def test_a_local_remote_is_read_without_dvc(tmp_path: Path) -> None:
    root = dvc_project(tmp_path / "proj", str(local_remote(tmp_path)))
    pulled = mlproject("data", "pull", cwd=root)
    assert (pulled.code, pulled.out) == (0, f"raw: data.csv matches ({MD5})\n"), pulled.err
    assert (root / "data.csv").read_bytes() == CONTENT
    status = mlproject("data", "status", "--json", cwd=root)
    assert status.code == 0, status.err
    assert "dvc" not in pulled.loaded | status.loaded
    (root / "data.csv").unlink()
    ran = mlproject("run", "--pull", cwd=root)
    assert (ran.code, ran.out) == (0, CONTENT.decode()), ran.err
    assert {"dvc", "conda_lock"}.isdisjoint(ran.loaded)


@pytest.mark.parametrize(("url", "install"), [
    ("s3://bucket/dvcstore", "pip install 'mlproject[dvc]' 'dvc[s3]'"),
    ("https://example.com/dvcstore", "pip install 'mlproject[dvc]'"),
])
def test_a_remote_that_needs_dvc_names_the_extra(tmp_path: Path, url: str, install: str) -> None:
    root = dvc_project(tmp_path / "proj", url)
    progress = f"mlproject: pulling data.raw ({MD5}) into data.csv\n"
    line = f"data.raw: remote 'storage' ({url}) needs DVC: {install}\n"
    pulled = mlproject("data", "pull", cwd=root)
    assert (pulled.code, pulled.out, pulled.err) == (2, "", f"{progress}mlproject: error: {line}")
    ran = mlproject("run", "--pull", cwd=root)
    assert (ran.code, ran.out, ran.err) == (2, "", f"{progress}mlproject: error: cannot start:\n{line}")
    assert not (root / "data.csv").exists()
    assert [p.name for p in root.iterdir() if p.name.startswith(".mlproject-pull")] == []


def test_a_missing_dvc_plugin_is_named(tmp_path: Path) -> None:
    """DVC itself is installed here (the test extra) but not its S3 plugin."""
    from mlproject.runner.util import extras

    if not extras.has_extra("dvc") or extras.importable("dvc_s3"):
        pytest.skip("needs DVC installed without dvc-s3")
    root = dvc_project(tmp_path / "proj", "s3://bucket/dvcstore")
    pulled = mlproject("data", "pull", cwd=root, blocked=())
    assert pulled.code == 2
    assert pulled.err.splitlines()[-1] == (
        "mlproject: error: data.raw: remote 'storage' (s3://bucket/dvcstore) needs DVC's s3 "
        "plugin: pip install 'dvc[s3]'")
    assert "dvc" not in pulled.loaded  # found, never imported: the plugin decided first


def conda_project(root: Path) -> Path:
    return write_project(root, {
        "MLproject": """
            name: solved
            environments:
              gpu: {conda: environment.yml, lock: conda-lock.yml}
            entry_points:
              main: {environment: gpu, command: "python -V"}
            """,
        "environment.yml": "channels: [conda-forge]\ndependencies: [python=3.11]\n",
    })


def test_lock_for_conda_without_conda_lock_names_the_extra(tmp_path: Path) -> None:
    root = conda_project(tmp_path / "proj")
    tools = tmp_path / "bin"  # a solver is there: what is missing is conda-lock alone
    tools.mkdir()
    (tools / "micromamba").write_text("#!/bin/sh\nexit 1\n")
    (tools / "micromamba").chmod(0o755)
    done = mlproject("lock", cwd=root, path=str(tools))
    assert (done.code, done.out) == (2, "")
    assert done.err.startswith("mlproject: error: environment 'gpu': locking environment.yml "
                               "needs conda-lock: pip install 'mlproject[conda]' (py-rattler "
                               "cannot solve it here: channel conda-forge cannot be reached")
    assert not (root / "conda-lock.yml").exists()


def test_conda_environments_install_from_a_lock_without_conda_lock(tmp_path: Path) -> None:
    """Building from conda-lock.yml is py-rattler's (core); conda-lock is not needed, nor loaded."""
    import condachannel as cc
    from mlproject.runner.envs import condalock

    channel = cc.make_channel(tmp_path / "channel", [cc.hello(), cc.greeting()])
    root = write_project(tmp_path / "proj", {"MLproject": """
        environments:
          gpu: {conda: environment.yml, lock: conda-lock.yml}
        entry_points:
          main: {environment: gpu, command: "hello"}
        """})
    env_file = cc.write_environment(root / "environment.yml", channel)
    cc.write_lock(root / "conda-lock.yml", channel, condalock.current_platform(), env_file)
    git_init(root)
    ran = mlproject("run", cwd=root)
    assert (ran.code, ran.out) == (0, "hello\n"), ran.err
    assert {"conda_lock", "dvc"}.isdisjoint(ran.loaded)
    assert "rattler" in ran.loaded


def test_conda_lock_runs_as_a_module_when_it_is_not_on_path() -> None:
    """lock_conda's fallback: the extra installed beside this interpreter, the venv not active."""
    done = subprocess.run([sys.executable, "-m", "conda_lock", "--version"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "conda-lock" in done.stdout.lower() or "version" in done.stdout.lower()


def test_the_extras_are_declared() -> None:
    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert [r.split(">")[0] for r in project["dependencies"]] == [
        "pyyaml", "jsonschema", "uv", "py-rattler", "packaging"]
    assert extras["dvc"] == ["dvc>=3.0"]
    assert extras["conda"] == ["conda-lock>=2.5"]
    assert extras["all"] == ["mlproject[dvc,conda]"]
    assert extras["test"][0] == "mlproject[all]"
