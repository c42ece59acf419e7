"""Shared fixtures: isolation from the user's cache, projects written inline, the CLI run
in-process or as a real process, and real Git repositories."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mlproject.runner.cli.main import main

SHARED_CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "mlflow"


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never touch the user's cache or Git configuration."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("MLPROJECT_CACHE_DIR", str(home / "cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "xdg"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))  # no user's config.toml
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "test@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "test@example.com")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run `mlproject ARGS...` in-process (optionally from another directory)."""

    def run(*args: str, cwd: Path | None = None) -> Result:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def write_project(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


@pytest.fixture
def project(tmp_path: Path) -> Callable[..., Path]:
    """A project directory with the given files (text is dedented)."""

    def make(files: dict[str, str], name: str = "proj") -> Path:
        return write_project(tmp_path / name, files)

    return make


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test runs inside its temporary directory, so files are displayed by their bare name."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True,
                          text=True).stdout


def git_init(root: Path, commit: bool = True) -> Path:
    git(root, "init", "-q", "-b", "main")
    if commit:
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "initial")
    return root


def mlproject_process(*args: str, cwd: Path, **kwargs: object) -> subprocess.Popen[bytes]:
    """`mlproject ARGS...` as a real process (for signals, concurrency, exit codes)."""
    return subprocess.Popen([sys.executable, "-m", "mlproject.runner", *args], cwd=cwd,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, **kwargs)  # type: ignore[call-overload]


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Any]:
    """A real dockerd for this test process (tests/dockerengine.py), stopped by pid at the end;
    skipped with the reason where it cannot be had (failed where MLPROJECT_REQUIRE_ENGINES=1)."""
    from tests import dockerengine

    try:
        with dockerengine.running() as engine:
            yield engine
    except dockerengine.Unavailable as exc:
        dockerengine.unavailable(str(exc))


@pytest.fixture(scope="session")
def kube_cluster(docker_engine: Any) -> Iterator[Any]:
    """A real single-node Kubernetes on the test Docker engine (tests/kubecluster.py), stopped by
    pid at the end; skipped with the reason where it cannot be had or MLPROJECT_SKIP_KUBERNETES=1
    (failed where MLPROJECT_REQUIRE_ENGINES=1)."""
    from tests import kubecluster

    why = kubecluster.skipped_here()
    if why:
        pytest.skip(f"the Kubernetes tests are skipped here: {why}")
    try:
        with kubecluster.running(docker_engine) as cluster:
            yield cluster
    except kubecluster.Unavailable as exc:
        kubecluster.unavailable(str(exc))


@pytest.fixture
def docker(docker_engine: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The engine, with DOCKER_HOST and PATH (its docker client first) set for the test."""
    for name, value in docker_engine.environ().items():
        monkeypatch.setenv(name, value)
    return docker_engine


@pytest.fixture
def fake() -> Iterator[Any]:
    """A fake engine (tests/fakebackend.py) registered as the backend `fake`, so that the CLI
    offers it; unregistered after the test."""
    from fakebackend import FakeBackend
    from mlproject.runner import backends

    made = FakeBackend()
    backends.register("fake", lambda: made)
    try:
        yield made
    finally:
        backends.unregister("fake")


@pytest.fixture
def supervisors() -> Iterator[list[int]]:
    """The pids of detached supervisors a test started (tests/detached.py): none outlives it."""
    from detached import kill

    pids: list[int] = []
    yield pids
    for pid in pids:
        kill(pid)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[Any]:
    """A real single-node Slurm for this test process (tests/slurmcluster.py), stopped by pid at
    the end; skipped with the reason where it cannot be had (failed where
    MLPROJECT_REQUIRE_ENGINES=1)."""
    from tests import slurmcluster

    try:
        with slurmcluster.running() as cluster:
            yield cluster
    except slurmcluster.Unavailable as exc:
        slurmcluster.unavailable(str(exc))


@pytest.fixture
def slurm(slurm_cluster: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The cluster, with SLURM_CONF set for the test (and the mlproject processes it starts)."""
    for name, value in slurm_cluster.environ().items():
        monkeypatch.setenv(name, value)
    return slurm_cluster


def wait_for_logs(root: Path, count: int, timeout: float = 60) -> None:
    """Until `count` runs of the project have written to their logs (their steps started)."""
    import time

    runs = root / ".mlproject" / "runs"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = list(runs.glob("*/log.txt")) if runs.exists() else []
        if len([p for p in logs if p.stat().st_size]) >= count:
            return
        time.sleep(0.1)
