"""A real Docker engine for the tests: Debian's docker.io, containerd, runc and tini unpacked with
`dpkg -x` (their start scripts would bring up a bridge and iptables), a dockerd started by pid on
a unix socket of its own, and a test image made with `docker import` of a Debian root filesystem
with python3 (mmdebstrap; no registry is reachable). What is downloaded or built is cached
between test runs under $MLPROJECT_TEST_CACHE (default ~/.cache/mlproject-tests).

This sandbox refuses a negative oom_score_adj, which runc writes for every container: dockerd
gets a runtime that is a small wrapper clamping `oomScoreAdj` to 0 in the OCI bundle, then runs
runc. overlay2 works here and makes a container in ~0.4 s; vfs (a copy of the image per
container, ~5 s) is the fallback where overlay2 does not mount.

Where the engine cannot be had (no apt-get, no network to Debian), its tests are skipped with
the reason; with MLPROJECT_REQUIRE_ENGINES=1 (set by .ci/run) they fail instead.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGES = ("docker.io", "containerd", "runc", "tini")
IMAGE = "mlproject-test/python:3.11"  # Debian 12: python3 3.11.2, bash, coreutils
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# what the image does not need: documentation, translations, perl's library
TRIMMED = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
           "usr/share/perl", "usr/share/perl5", "var/cache/apt", "var/lib/apt/lists")

_RUNTIME = """#!/bin/sh
# runc, with a negative oom_score_adj in the OCI bundle clamped to 0 (this sandbox refuses one)
bundle=.
prev=
for a in "$@"; do
  case "$prev" in --bundle|-b) bundle=$a;; esac
  case "$a" in --bundle=*) bundle=${a#--bundle=};; esac
  prev=$a
done
if [ -f "$bundle/config.json" ]; then
  sed -i 's/"oomScoreAdj":-[0-9]*/"oomScoreAdj":0/g' "$bundle/config.json"
fi
exec RUNC "$@"
"""


class Unavailable(Exception):
    """The engine cannot be had here: why."""


def cache_dir() -> Path:
    base = os.environ.get("MLPROJECT_TEST_CACHE") or os.path.expanduser("~/.cache/mlproject-tests")
    path = Path(base) / "docker"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One test process at a time prepares what is cached (pytest-xdist workers share it)."""
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(argv: list[str], timeout: float, **kwargs: object) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              **kwargs)  # type: ignore[call-overload]
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"{argv[0]}: {exc}") from None
    if done.returncode != 0:
        raise Unavailable(f"{' '.join(argv[:3])} ... failed ({done.returncode}): "
                          f"{(done.stderr or done.stdout).strip()[-800:]}")
    return done  # type: ignore[no-any-return]


def binaries() -> Path:
    """The unpacked packages' root (usr/bin, usr/sbin), unpacked once."""
    root = cache_dir() / "root"
    with _locked(cache_dir() / ".root.lock"):
        if (root / "usr" / "sbin" / "dockerd").exists():
            return root
        if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
            raise Unavailable("no apt-get/dpkg to fetch Debian's docker.io")
        debs = Path(tempfile.mkdtemp(dir=cache_dir(), prefix="debs-"))
        try:
            _run(["apt-get", "download", *PACKAGES], 300, cwd=debs)
            partial = Path(tempfile.mkdtemp(dir=cache_dir(), prefix="root-"))
            for deb in sorted(debs.glob("*.deb")):
                _run(["dpkg", "-x", str(deb), str(partial)], 120)
            os.replace(partial, root)
        finally:
            shutil.rmtree(debs, ignore_errors=True)
    return root


def rootfs() -> Path:
    """A tar of a Debian root filesystem with python3, built once with mmdebstrap."""
    tar = cache_dir() / f"python3-{SUITE}.tar"
    with _locked(cache_dir() / ".rootfs.lock"):
        if tar.exists():
            return tar
        if shutil.which("mmdebstrap") is None:
            raise Unavailable("mmdebstrap is not installed (apt-get install mmdebstrap): it "
                              "builds the test image's root filesystem")
        work = Path(tempfile.mkdtemp(dir=cache_dir(), prefix="rootfs-"))
        try:
            tree = work / "tree"
            _run(["mmdebstrap", "--variant=essential", "--include=python3", "--mode=root",
                  "--format=directory", SUITE, str(tree), MIRROR], 900)
            for trimmed in TRIMMED:
                shutil.rmtree(tree / trimmed, ignore_errors=True)
            _run(["tar", "-C", str(tree), "-cf", str(work / "out.tar"), "."], 300)
            os.replace(work / "out.tar", tar)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return tar


@dataclass(frozen=True)
class Engine:
    """A running dockerd: `host` is its DOCKER_HOST, `bindir` holds its docker client (first on
    PATH), `image` a local image with python3 (containers run with --network none)."""
    host: str
    bindir: str
    image: str
    state: Path
    storage: str  # overlay2 or vfs

    def environ(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.host,
                "PATH": f"{self.bindir}{os.pathsep}{os.environ.get('PATH', os.defpath)}"}

    def docker(self, *args: str, check: bool = True,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([f"{self.bindir}/docker", *args], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, **self.environ()})
        if check and done.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)}: {done.stderr.strip()}")
        return done

    def containers(self, *filters: str) -> list[str]:
        """Ids of the containers there are (all states), optionally filtered (label=...)."""
        args = ["ps", "-aq", "--no-trunc", *[f"--filter={f}" for f in filters]]
        return self.docker(*args).stdout.split()


class _Daemon:
    def __init__(self, root: Path, storage: str) -> None:
        self.state = Path(tempfile.mkdtemp(prefix="mlpdk-", dir="/tmp"))  # a short socket path
        self.socket = self.state / "docker.sock"
        runtime = self.state / "runc-clamp"
        runtime.write_text(_RUNTIME.replace("RUNC", str(root / "usr" / "sbin" / "runc")))
        runtime.chmod(0o755)
        self.log = open(self.state / "dockerd.log", "wb")  # noqa: SIM115 (closed in stop)
        env = {**os.environ, "PATH": f"{root}/usr/bin:{root}/usr/sbin:{os.environ['PATH']}"}
        env.pop("DOCKER_HOST", None)
        self.process = subprocess.Popen(
            [str(root / "usr" / "sbin" / "dockerd"), f"--storage-driver={storage}",
             "--bridge=none", "--iptables=false", "--ip-masq=false", "--ip6tables=false",
             "-H", f"unix://{self.socket}", "--data-root", str(self.state / "data"),
             "--exec-root", str(self.state / "exec"), "--pidfile", str(self.state / "pid"),
             "--add-runtime", f"clamp={runtime}", "--default-runtime", "clamp"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True)

    def ready(self, client: Path, timeout: float = 30) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.process.poll() is not None:
                return False
            if self.socket.exists():
                done = subprocess.run([str(client), "-H", f"unix://{self.socket}", "version"],
                                      capture_output=True, timeout=10)
                if done.returncode == 0:
                    return True
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # dockerd stops containerd and containers
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.log.close()

    def remove(self) -> None:
        subprocess.run(["umount", "-R", "-l", str(self.state / "data")], capture_output=True)
        shutil.rmtree(self.state, ignore_errors=True)

    def tail(self) -> str:
        try:
            return (self.state / "dockerd.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""


@contextmanager
def running() -> Iterator[Engine]:
    """A dockerd for the duration, with the test image imported; stopped by pid after."""
    root = binaries()
    tar = rootfs()
    client = root / "usr" / "bin" / "docker"
    daemon = None
    why = ""
    for storage in ("overlay2", "vfs"):
        daemon = _Daemon(root, storage)
        if daemon.ready(client):
            break
        why += f"\n{storage}: {daemon.tail()}"
        daemon.stop()
        daemon.remove()
        daemon = None
    if daemon is None:
        raise Unavailable(f"dockerd did not start:{why}")
    try:
        engine = Engine(f"unix://{daemon.socket}", str(root / "usr" / "bin"), IMAGE,
                        daemon.state, storage)
        engine.docker("import", "--change", 'CMD ["python3"]', str(tar), IMAGE, timeout=300)
        yield engine
    finally:
        try:
            ids = subprocess.run([str(client), "-H", f"unix://{daemon.socket}", "ps", "-aq"],
                                 capture_output=True, text=True, timeout=30).stdout.split()
            if ids:
                subprocess.run([str(client), "-H", f"unix://{daemon.socket}", "rm", "-f", *ids],
                               capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            pass
        daemon.stop()
        daemon.remove()


def unavailable(reason: str) -> None:
    """Skip, or where engines are required (CI), fail, with the reason."""
    if os.environ.get("MLPROJECT_REQUIRE_ENGINES") == "1":
        pytest.fail(f"the Docker engine is required here and cannot be had: {reason}")
    pytest.skip(f"no Docker engine: {reason}")
