"""Python environments for real: uv from the package index, the store, locks, rebuilds."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import mlproject_process
from mlproject.runner.envs import python as pyenv
from mlproject.runner.envs.base import EnvError
from mlproject.runner.envs.store import MARKER, EnvStore
from mlproject.runner.state import records
from mlproject.spec.model import Environment

PY = ".".join(map(str, sys.version_info[:2]))
SHOW = "python show.py"
SHOW_PY = """
import sys
try:
    import six
    version = six.__version__
except ImportError:
    version = "none"
open("where.txt", "w").write(sys.prefix + " " + version)
"""


def _project(project: Callable[..., Path], requirements: str, extra: str = "") -> Path:
    return project({
        "MLproject": f"""
            environments:
              train: {{python: "{PY}", requirements: requirements.txt{extra}}}
            entry_points:
              main:
                environment: train
                command: "{SHOW}"
        """,
        "requirements.txt": requirements,
        "show.py": SHOW_PY,
    })


def _where(root: Path) -> tuple[str, str]:
    prefix, version = (root / "where.txt").read_text().split()
    return prefix, version


@pytest.mark.slow
def test_unlocked_requirements_resolve_warn_and_record(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = _project(project, "six\n")
    plan = json.loads(cli("plan", str(root), "--json").out)
    assert plan["steps"][0]["environment"]["ready"] is False
    env = plan["steps"][0]["environment"]
    assert env["detail"] == "requirements.txt; not locked"
    assert env["pending"].startswith("would resolve requirements.txt with uv for Python ")
    assert env["pending"].endswith(" (`mlproject lock` writes requirements.lock ahead)")
    result = cli("run", str(root))
    assert result.code == 0, result.err
    assert "requirements.txt is not locked" in result.err and "mlproject lock" in result.err
    prefix, version = _where(root)
    record = records.list_runs(str(root))[-1]
    env = record["environment"]
    assert env["kind"] == "python" and env["prefix"] == prefix and env["built_now"] is True
    assert env["recipe"]["resolved_now"] is True
    assert env["recipe"]["pins"] == [f"six=={version}"]
    assert env["recipe"]["require_hashes"] is True
    again = cli("run", str(root))
    assert again.code == 0
    assert records.list_runs(str(root))[-1]["environment"]["built_now"] is False


@pytest.mark.slow
def test_lock_then_run_from_the_lock(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = _project(project, "six<1.17\n")
    locked = cli("lock", str(root))
    assert locked.code == 0, locked.err
    lock = root / "requirements.lock"
    assert locked.out.strip() == str(lock)
    text = lock.read_text()
    assert text.startswith("# Written by `mlproject lock` from requirements.txt")
    assert "six==1.16.0" in text and "--hash=sha256:" in text
    plan = json.loads(cli("plan", str(root), "--json").out)
    assert plan["steps"][0]["environment"]["key"]
    result = cli("run", str(root))
    assert result.code == 0, result.err
    assert "not locked" not in result.err
    assert _where(root)[1] == "1.16.0"
    record = records.list_runs(str(root))[-1]["environment"]["recipe"]
    assert record["lock"] == str(lock) and record["resolved_now"] is False
    # the requirements change: the lock is stale, and said so with both names
    (root / "requirements.txt").write_text("six<1.18\n")
    stale = cli("plan", str(root))
    assert "requirements.lock was locked from a different requirements.txt" in stale.err
    # a lock file mlproject did not write is never overwritten
    lock.write_text("six==1.16.0\n")
    refused = cli("lock", str(root))
    assert refused.code == 4  # exitcodes.INCOMPLETE: not locked
    assert "was not written by `mlproject lock`" in refused.err
    assert lock.read_text() == "six==1.16.0\n"


@pytest.mark.slow
def test_a_hash_pinned_requirements_file_is_the_lock(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = _project(project, "six<1.17\n")
    cli("lock", str(root))
    body = "".join(line for line in (root / "requirements.lock").read_text().splitlines(True)
                   if not line.startswith("#"))
    (root / "requirements.txt").write_text(body)
    (root / "requirements.lock").unlink()
    assert cli("run", str(root)).code == 0
    recipe = records.list_runs(str(root))[-1]["environment"]["recipe"]
    assert recipe["lock"].endswith("requirements.txt") and recipe["require_hashes"] is True


@pytest.mark.slow
def test_a_tampered_hash_fails_the_build_and_leaves_nothing(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = _project(project, "six<1.17\n")
    cli("lock", str(root))
    lock = root / "requirements.lock"
    text = lock.read_text()
    first = text.index("--hash=sha256:") + len("--hash=sha256:")
    second = text.index("--hash=sha256:", first) + len("--hash=sha256:")
    for at in sorted((first, second), reverse=True):
        text = text[:at] + ("0" if text[at] != "0" else "1") + text[at + 1:]
    lock.write_text(text)
    result = cli("run", str(root))
    assert result.code == 1
    record = records.list_runs(str(root))[-1]
    assert record["status"] == "failed" and "environment 'train'" in record["reason"]
    assert "hash" in record["reason"].lower()
    assert [e for e in EnvStore().entries() if e["marker"] is None] == []


def _key(root: Path, env: Environment) -> str:
    recipe = pyenv.observed_recipe(str(root), env, lambda _: None)
    assert not isinstance(recipe, str)
    return recipe.key


def test_the_key_is_what_gets_installed_not_the_text(tmp_path: Path) -> None:
    env = Environment("e", "python", python=PY, file="requirements.txt")
    aaa, bbb, ccc, ddd = ("sha256:" + c * 64 for c in "abcd")
    lock = (f"six==1.16.0 \\\n    --hash={aaa} \\\n    --hash={bbb}\n"
            f"idna==3.7 --hash={ccc}\n")
    (tmp_path / "requirements.txt").write_text(lock)
    base = _key(tmp_path, env)
    reformatted = (f"# a comment\n\nIDNA == 3.7  --hash={ccc.upper().replace('SHA256', 'sha256')}\n"
                   f"six==1.16.0 --hash={bbb} --hash={aaa}   # why\n")
    (tmp_path / "requirements.txt").write_text(reformatted)
    assert _key(tmp_path, env) == base
    (tmp_path / "requirements.txt").write_text(lock.replace("idna==3.7", "idna==3.8"))
    assert _key(tmp_path, env) != base
    (tmp_path / "requirements.txt").write_text(lock.replace(ccc, ddd))
    assert _key(tmp_path, env) != base
    other = next(v for v in ("3.10", "3.12", "3.11", "3.13") if v != PY)
    try:
        assert _key(tmp_path, Environment("e", "python", python=other, file="requirements.txt")) != base
    except EnvError:
        pass  # that interpreter is not on this machine


@pytest.mark.slow
def test_mlflow_python_env_yaml(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = project({
        "MLproject": f"""
            name: legacy
            python_env: python_env.yaml
            entry_points:
              main: {{command: "{SHOW}"}}
        """,
        "python_env.yaml": f"""
            python: "{PY}"
            build_dependencies:
              - pip
            dependencies:
              - -r requirements.txt
        """,
        "requirements.txt": "six==1.16.0\n",
        "show.py": SHOW_PY,
    })
    result = cli("run", str(root))
    assert result.code == 0, result.err
    assert _where(root)[1] == "1.16.0"
    pins = records.list_runs(str(root))[-1]["environment"]["recipe"]["pins"]
    assert "six==1.16.0" in pins and any(p.startswith("pip==") for p in pins)


def test_a_python_that_is_not_there_names_those_that_are(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = project({"MLproject": """
        environments: {old: {python: "2.5"}}
        entry_points: {main: {environment: old, command: "python -c pass"}}
    """})
    plan = cli("plan", str(root))
    assert plan.code == 0
    assert "cannot be built: Python 2.5 is not installed on this machine (found: " in plan.out
    result = cli("run", str(root))
    assert result.code == 2
    assert "environment 'old': Python 2.5 is not installed on this machine (found: " in result.err
    assert PY in result.err and "does not download" in result.err
    assert not records.runs_dir(str(root)).exists()


def test_env_local_ignores_the_declared_environment(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = _project(project, "six\n")
    result = cli("run", str(root), "--env", "local", "-e", "main")
    assert result.code == 0, result.err
    assert EnvStore().entries() == []
    assert records.list_runs(str(root))[-1]["environment"]["kind"] == "local"
    assert _where(root)[0] == sys.prefix


@pytest.mark.slow
def test_env_list_path_prune(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = _project(project, "six==1.16.0\n")
    path = cli("env", "path", "main", str(root))
    assert path.code == 0, path.err
    prefix = Path(path.out.strip())
    assert (prefix / MARKER).exists() and (prefix / "bin" / "python").exists()
    listed = json.loads(cli("env", "list", "--json").out)
    assert [e["path"] for e in listed] == [str(prefix)]
    assert "1 packages" in cli("env", "list").out
    assert cli("env", "prune", "--older-than", "1d").out == ""
    assert prefix.exists()
    assert cli("env", "prune").out.strip() == str(prefix)
    assert not prefix.exists()
    assert cli("env", "prune", "--older-than", "soon").code == 2


@pytest.mark.slow
def test_a_removed_interpreter_is_detected_and_the_environment_rebuilt(
        cli: Callable[..., Any], project: Callable[..., Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The environment is built from an interpreter reached through a directory of ours, which
    # is then removed: exactly what uninstalling a Python does to the environments made from it.
    pybin = tmp_path / "pybin"
    pybin.mkdir()
    (pybin / "python3").symlink_to(os.path.realpath(sys.executable))
    monkeypatch.setenv("PATH", f"{pybin}{os.pathsep}{os.environ['PATH']}")
    root = _project(project, "six==1.16.0\n")
    assert cli("run", str(root)).code == 0
    first = records.list_runs(str(root))[-1]["environment"]
    assert first["recipe"]["python"] == str(pybin / "python3")
    (pybin / "python3").unlink()
    result = cli("run", str(root))
    assert result.code == 0, result.err
    assert f"its interpreter {pybin / 'python3'} is gone" in result.err
    second = records.list_runs(str(root))[-1]["environment"]
    assert second["built_now"] is True and second["prefix"] == first["prefix"]


@pytest.mark.slow
def test_a_killed_build_is_detected_and_rebuilt(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    # Kill a real `mlproject run` while uv is building, then run again. uv is fast, so poll
    # for the moment the environment exists without its marker, and retry if the build won.
    root = _project(project, "six==1.16.0\nidna==3.7\ncertifi==2024.8.30\n")
    for _ in range(20):
        EnvStore().prune(None)
        child = mlproject_process("run", ".", cwd=root, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        killed = False
        deadline = time.monotonic() + 30
        while child.poll() is None and time.monotonic() < deadline:
            unfinished = [e for e in EnvStore().entries() if e["marker"] is None]
            if unfinished and (Path(unfinished[0]["path"]) / "bin").exists():
                os.killpg(child.pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.002)
        child.wait(timeout=30)
        if killed and [e for e in EnvStore().entries() if e["marker"] is None]:
            break
    else:
        pytest.skip("the build always finished before it could be killed")
    result = cli("run", str(root))
    assert result.code == 0, result.err
    assert "an earlier build did not finish" in result.err
    assert all(e["marker"] for e in EnvStore().entries())


@pytest.mark.slow
def test_concurrent_runs_build_once_and_share(project: Callable[..., Path]) -> None:
    root = _project(project, "six==1.16.0\n")
    children = [mlproject_process("run", ".", cwd=root, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE) for _ in range(4)]
    errors = [c.communicate(timeout=180)[1].decode() for c in children]
    assert [c.returncode for c in children] == [0] * 4, errors
    built = [r["environment"]["built_now"] for r in records.list_runs(str(root))]
    assert sorted(built) == [False, False, False, True]
    assert len(EnvStore().entries()) == 1
    assert sum("mlproject: building the python environment" in e for e in errors) == 1


@pytest.mark.slow
def test_bytecode_is_compiled_once_into_uvs_cache_and_linked(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("six==1.16.0\nidna==3.7\n")
    env = Environment("e", "python", python=PY, file="requirements.txt")
    recipe = pyenv.acquired_recipe(str(tmp_path), env, lambda _: None)
    first: list[str] = []
    one, _ = EnvStore(tmp_path / "store-one").ensure(recipe, first.append)
    second: list[str] = []
    two, _ = EnvStore(tmp_path / "store-two").ensure(recipe, second.append)
    assert one != two
    compiled_first = next(m for m in first if m.startswith("bytecode:"))
    compiled_second = next(m for m in second if m.startswith("bytecode:"))
    assert not compiled_first.startswith("bytecode: 0 files")
    assert compiled_second.startswith("bytecode: 0 files compiled into uv's cache")
    # the second environment's modules load from .pyc files that match their sources
    verbose = subprocess.run([str(two / "bin" / "python"), "-v", "-c", "import idna.core, six"],
                             capture_output=True, text=True, check=True).stderr
    assert f"{two}/lib/python{PY}/site-packages/idna/__pycache__/core.cpython-" in verbose
    assert "core.cpython" in verbose and "matches" in verbose
    site = two / "lib" / f"python{PY}" / "site-packages"
    assert os.stat(site / "idna" / "__pycache__" / f"core.{sys.implementation.cache_tag}.pyc").st_nlink > 1
