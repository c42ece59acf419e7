"""Conda environments end to end, without conda: a local file:// channel built by the fixtures,
a conda-lock.yml pinning it, py-rattler linking and uv for the pip section."""
from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("rattler", reason="py-rattler is not installed")

import condachannel as cc
from mlproject.runner.envs import condalock
from mlproject.runner.envs.base import EnvError
from mlproject.runner.envs.conda import conda_recipe, lock_conda
from mlproject.runner.envs.store import EnvStore
from mlproject.runner.util.files import cache_root
from mlproject.spec.model import Environment

PLATFORM = condalock.current_platform()
ENV = Environment("gpu", "conda", file="environment.yml", lock="conda-lock.yml")


@pytest.fixture
def locked(tmp_path: Path) -> tuple[Path, cc.Channel]:
    """A project whose environment.yml and conda-lock.yml name two packages of a local channel."""
    channel = cc.make_channel(tmp_path / "channel", [cc.hello(), cc.greeting()])
    root = tmp_path / "proj"
    env_file = cc.write_environment(root / "environment.yml", channel)
    cc.write_lock(root / "conda-lock.yml", channel, PLATFORM, env_file)
    return root, channel


def _key(root: Path) -> str:
    return conda_recipe(str(root), ENV)[0].key


def test_installs_from_the_lock(locked: tuple[Path, cc.Channel], tmp_path: Path) -> None:
    root, _ = locked
    recipe, warnings = conda_recipe(str(root), ENV)
    assert warnings == []
    logged: list[str] = []
    prefix, built = EnvStore(tmp_path / "envs").ensure(recipe, logged.append)
    assert built
    assert (prefix / "share" / "hello" / "hello.txt").read_text() == "hello\n"
    assert (prefix / "share" / "greeting" / "greeting.txt").read_text() == "hi\n"
    assert sorted(os.listdir(prefix / "conda-meta")) == ["greeting-2.0-0.json", "hello-1.0-0.json", "history"]
    assert recipe.unhealthy(prefix) is None
    assert recipe.describe()["conda"] == ["hello=1.0", "greeting=2.0"]
    assert (cache_root() / "conda-pkgs" / "hello-1.0-0").is_dir()  # not the user's rattler cache
    # activated, the package's own program is found first
    env = {**os.environ, **recipe.activate(prefix, os.environ)}
    assert env["CONDA_PREFIX"] == str(prefix)
    assert subprocess.run(["hello"], env=env, capture_output=True, text=True, check=True).stdout == "hello\n"
    # the second time it is reused
    assert EnvStore(tmp_path / "envs").ensure(recipe, logged.append) == (prefix, False)


def test_reformatting_the_lock_keeps_the_key(locked: tuple[Path, cc.Channel]) -> None:
    root, _ = locked
    before = _key(root)
    lock = root / "conda-lock.yml"
    data = yaml.safe_load(lock.read_text())
    data["package"].reverse()
    data["package"] = [dict(sorted(p.items(), reverse=True)) for p in data["package"]]
    lock.write_text("# reformatted\n" + yaml.safe_dump(data, indent=4, sort_keys=True, width=40))
    assert _key(root) == before


def test_changing_one_pin_changes_the_key(locked: tuple[Path, cc.Channel], tmp_path: Path) -> None:
    root, _ = locked
    keys = [_key(root)]
    newer = cc.make_channel(tmp_path / "channel2", [cc.hello("1.1"), cc.greeting()])
    cc.write_lock(root / "conda-lock.yml", newer, PLATFORM, root / "environment.yml")
    keys.append(_key(root))
    lock = root / "conda-lock.yml"
    data = yaml.safe_load(lock.read_text())
    data["package"][1]["hash"]["sha256"] = "0" * 64
    lock.write_text(yaml.safe_dump(data))
    keys.append(_key(root))
    assert len(set(keys)) == 3


def test_tampered_package_is_refused_and_nothing_stays(locked: tuple[Path, cc.Channel], tmp_path: Path) -> None:
    root, channel = locked
    expected = cc._hashes(channel.archive("greeting"))["sha256"]
    cc.tamper(channel, "greeting")
    found = cc._hashes(channel.archive("greeting"))["sha256"]
    recipe, _ = conda_recipe(str(root), ENV)
    store = EnvStore(tmp_path / "envs")
    with pytest.raises(EnvError) as caught:
        store.ensure(recipe, lambda _: None)
    message = str(caught.value)
    assert "package greeting 2.0" in message
    assert f"sha256 expected {expected}, found {found}" in message
    assert not store.prefix(recipe.key).exists()
    assert not (store.prefix(recipe.key) / "share" / "hello").exists()


def test_md5_only_lock_is_checked_too(locked: tuple[Path, cc.Channel], tmp_path: Path) -> None:
    root, channel = locked
    lock = root / "conda-lock.yml"
    data = yaml.safe_load(lock.read_text())
    for package in data["package"]:
        del package["hash"]["sha256"]
    lock.write_text(yaml.safe_dump(data))
    cc.tamper(channel, "hello")
    with pytest.raises(EnvError, match=r"package hello 1\.0 .* md5 expected"):
        EnvStore(tmp_path / "envs").ensure(conda_recipe(str(root), ENV)[0], lambda _: None)


def test_stale_lock_warning_names_both_files(locked: tuple[Path, cc.Channel]) -> None:
    root, _ = locked
    env_file = root / "environment.yml"
    # a new layout of the same request is not a change
    data = yaml.safe_load(env_file.read_text())
    data["dependencies"].reverse()
    env_file.write_text("# comment\n" + yaml.safe_dump(data, indent=4, sort_keys=True))
    assert conda_recipe(str(root), ENV)[1] == []
    data["dependencies"].append("numpy>=1.26")
    env_file.write_text(yaml.safe_dump(data))
    _, warnings = conda_recipe(str(root), ENV)
    assert warnings == ["conda-lock.yml was locked from a different environment.yml: run mlproject lock"]


def test_unstamped_lock_is_checked_by_names(locked: tuple[Path, cc.Channel]) -> None:
    root, channel = locked
    env_file = root / "environment.yml"
    cc.write_lock(root / "conda-lock.yml", channel, PLATFORM, env_file, stamp=False)
    assert conda_recipe(str(root), ENV)[1] == []
    data = yaml.safe_load(env_file.read_text())
    data["dependencies"] += ["conda-forge::numpy >=1.26", {"pip": ["requests[socks]==2.32.0", "-e .",
                                                                  "git+https://example.org/x.git", "./local"]}]
    env_file.write_text(yaml.safe_dump(data))
    assert conda_recipe(str(root), ENV)[1] == [
        "conda-lock.yml does not match environment.yml: no locked package for numpy, requests: "
        "run mlproject lock"]


def test_missing_lock_says_how_to_make_one(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "conda.yaml").write_text("channels: [conda-forge]\ndependencies: [python=3.11]\n")
    mlflow = Environment("conda_env", "conda", file="conda.yaml")
    with pytest.raises(EnvError) as caught:
        conda_recipe(str(root), mlflow)
    assert str(caught.value) == (
        "conda.yaml is not locked (there is no conda-lock.yml beside it); "
        "run mlproject lock (it runs conda-lock, which needs conda, mamba or micromamba). "
        "mlproject installs conda environments only from a lock")
    with pytest.raises(EnvError, match=r"its lock conda-lock\.yml does not exist"):
        conda_recipe(str(root), Environment("gpu", "conda", file="conda.yaml", lock="conda-lock.yml"))


def test_mlflow_conda_env_uses_the_lock_beside_it(locked: tuple[Path, cc.Channel], tmp_path: Path) -> None:
    root, _ = locked
    recipe, warnings = conda_recipe(str(root), Environment("conda_env", "conda", file="environment.yml"))
    assert (recipe.key, warnings) == (_key(root), [])


def test_lock_for_another_platform(locked: tuple[Path, cc.Channel]) -> None:
    root, _ = locked
    other = "osx-arm64" if PLATFORM != "osx-arm64" else "linux-64"
    with pytest.raises(EnvError, match=f"has no packages for {other} \\(it was locked for {PLATFORM}\\)"):
        conda_recipe(str(root), ENV, platform=other)


def test_lock_without_a_solver_fails_at_once(locked: tuple[Path, cc.Channel], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    root, channel = locked
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    shutil.rmtree(channel.root)  # nor can py-rattler solve it (tests/test_env_conda_solve.py)
    started = time.monotonic()
    with pytest.raises(EnvError) as caught:
        lock_conda(str(root), ENV, lambda _: None)
    assert time.monotonic() - started < 1
    assert str(caught.value) == (
        "conda-lock needs conda, mamba or micromamba, and none is on PATH; install one "
        "(e.g. micromamba) or write conda-lock.yml elsewhere (py-rattler cannot solve it here: "
        f"channel {channel.url} cannot be reached (no repodata.json))")


def test_unhealthy_when_a_record_is_removed(locked: tuple[Path, cc.Channel], tmp_path: Path) -> None:
    root, _ = locked
    recipe, _ = conda_recipe(str(root), ENV)
    store = EnvStore(tmp_path / "envs")
    prefix, _ = store.ensure(recipe, lambda _: None)
    (prefix / "conda-meta" / "hello-1.0-0.json").unlink()
    assert recipe.unhealthy(prefix) == "the record of hello 1.0 (conda-meta/hello-1.0-0.json) is gone"
    logged: list[str] = []
    assert store.ensure(recipe, logged.append) == (prefix, True)
    assert any("rebuilding" in line and "hello-1.0-0.json) is gone" in line for line in logged)
    assert (prefix / "conda-meta" / "hello-1.0-0.json").exists()


def test_pip_section_is_installed_with_uv(tmp_path: Path) -> None:
    channel = cc.make_channel(tmp_path / "channel", [cc.greeting(), cc.python_shim()])
    wheel = cc.build_wheel(tmp_path / "wheels")
    root = tmp_path / "proj"
    env_file = cc.write_environment(root / "environment.yml", channel, pip=["tinypip==1.0"])
    cc.write_lock(root / "conda-lock.yml", channel, PLATFORM, env_file, wheels=[wheel])
    recipe, warnings = conda_recipe(str(root), ENV)
    assert warnings == []
    assert recipe.describe()["pip"] == ["tinypip==1.0"]
    prefix, _ = EnvStore(tmp_path / "envs").ensure(recipe, lambda _: None)
    done = subprocess.run([str(prefix / "bin" / "python"), "-c", "import sys, tinypip; print(sys.prefix, tinypip.VALUE)"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.split() == [str(prefix), "42"]


def test_pip_package_with_a_wrong_hash_is_refused(tmp_path: Path) -> None:
    channel = cc.make_channel(tmp_path / "channel", [cc.python_shim()])
    wheel = cc.build_wheel(tmp_path / "wheels")
    root = tmp_path / "proj"
    env_file = cc.write_environment(root / "environment.yml", channel, pip=["tinypip==1.0"])
    cc.write_lock(root / "conda-lock.yml", channel, PLATFORM, env_file, wheels=[wheel])
    wheel.write_bytes(wheel.read_bytes() + b"\0")
    recipe, _ = conda_recipe(str(root), ENV)
    store = EnvStore(tmp_path / "envs")
    with pytest.raises(EnvError, match=r"^package tinypip 1\.0 \(file:.*\) does not match the lock: sha256 "):
        store.ensure(recipe, lambda _: None)
    assert not store.prefix(recipe.key).exists()


@pytest.mark.slow
def test_packages_named_by_http_url_are_downloaded_once(locked: tuple[Path, cc.Channel], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    root, channel = locked
    for proxy in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    served: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(channel.root), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            served.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        lock = root / "conda-lock.yml"
        base = f"http://127.0.0.1:{server.server_address[1]}"
        lock.write_text(lock.read_text().replace(channel.url, base))
        recipe, _ = conda_recipe(str(root), ENV)
        prefix, _ = EnvStore(tmp_path / "envs").ensure(recipe, lambda _: None)
        assert (prefix / "share" / "hello" / "hello.txt").read_text() == "hello\n"
        shutil.rmtree(prefix)
        EnvStore(tmp_path / "envs").ensure(recipe, lambda _: None)
        assert sorted(served) == ["/noarch/greeting-2.0-0.tar.bz2", "/noarch/hello-1.0-0.tar.bz2"]
        # a server that sends other bytes: refused, and nothing of it is kept
        cc.tamper(channel, "hello")
        shutil.rmtree(cache_root() / "conda-downloads")
        with pytest.raises(EnvError, match=r"^package hello 1\.0 \(http://127\.0\.0\.1:\d+/noarch/"):
            EnvStore(tmp_path / "envs2").ensure(recipe, lambda _: None)
    finally:
        server.shutdown()
        server.server_close()
    assert [p for p in (cache_root() / "conda-downloads").rglob("*") if p.is_file()] == []


def test_lock_runs_conda_lock_and_stamps_the_lock(locked: tuple[Path, cc.Channel], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """conda-lock itself is a boundary: a fake one records its arguments and writes the lock
    a solver would have written (unstamped, as conda-lock writes it)."""
    root, channel = locked
    solved = cc.write_lock(tmp_path / "solved.yml", channel, PLATFORM, root / "environment.yml", stamp=False)
    (root / "conda-lock.yml").unlink()
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "micromamba").write_text("#!/bin/sh\nexit 1\n")
    (tools / "conda-lock").write_text(
        f"#!{sys.executable}\nimport json, shutil, sys\n"
        f"open({str(tmp_path / 'argv.json')!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
        f"shutil.copy({str(solved)!r}, sys.argv[sys.argv.index('--lockfile') + 1])\n")
    for tool in tools.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tools))
    assert lock_conda(str(root), ENV, lambda _: None) == root / "conda-lock.yml"
    assert json.loads((tmp_path / "argv.json").read_text()) == [
        "lock", "--conda", str(tools / "micromamba"), "-f", "environment.yml",
        "--lockfile", "conda-lock.yml", "-p", PLATFORM]
    assert (root / "conda-lock.yml").read_text().startswith(condalock.INPUT_MARK)
    assert conda_recipe(str(root), ENV)[1] == []
    with (root / "environment.yml").open("a") as handle:
        handle.write("platforms: [linux-64, osx-arm64]\n")
    assert conda_recipe(str(root), ENV)[1] == [
        "conda-lock.yml was locked from a different environment.yml: run mlproject lock"]


@pytest.mark.skip(reason="needs a conda solver and the conda-forge channel; neither is reachable here")
def test_lock_with_conda_lock_against_conda_forge(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "environment.yml").write_text("channels: [conda-forge]\ndependencies: [python=3.11, pip]\n")
    lock = lock_conda(str(root), ENV, print)
    recipe, warnings = conda_recipe(str(root), ENV)
    assert lock.exists() and warnings == []
    prefix, _ = EnvStore(tmp_path / "envs").ensure(recipe, print)
    assert (prefix / "bin" / "python").exists()


def test_mlproject_run_in_a_conda_environment(locked: tuple[Path, cc.Channel], cli: Any) -> None:
    root, channel = locked
    (root / "MLproject").write_text(
        "environments:\n  gpu: {conda: environment.yml, lock: conda-lock.yml}\n"
        "entry_points:\n  main:\n    environment: gpu\n"
        "    command: 'hello > out.txt; echo $CONDA_PREFIX >> out.txt'\n")
    plan = json.loads(cli("plan", str(root), "--json").out)
    env = plan["steps"][0]["environment"]
    assert env["kind"] == "conda" and env["ready"] is False and env["key"]
    result = cli("run", str(root))
    assert result.code == 0, result.err
    hello_out, prefix = (root / "out.txt").read_text().split()
    assert hello_out == "hello"
    from mlproject.runner.state import records

    record = records.list_runs(str(root))[-1]["environment"]
    assert record["prefix"] == prefix and record["built_now"] is True
    assert record["recipe"]["conda"] == ["hello=1.0", "greeting=2.0"]
    assert json.loads(cli("plan", str(root), "--json").out)["steps"][0]["environment"]["ready"]
    # a package tampered with after locking: the run fails, names it, and leaves nothing built
    EnvStore().prune(None)
    cc.tamper(channel, "greeting")
    shutil.rmtree(cache_root() / "conda-pkgs", ignore_errors=True)
    failed = cli("run", str(root))
    assert failed.code == 1
    reason = records.list_runs(str(root))[-1]["reason"]
    assert "greeting 2.0" in reason and "does not match the lock" in reason
    assert EnvStore().entries() == []
