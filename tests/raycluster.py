"""A real Ray cluster for the tests: a head node of the Ray installed in this environment (the
`ray` extra), started by pid and stopped by pid, its Jobs API on 127.0.0.1:8265.

Ray binds every interface whatever it is told (its GCS, raylet, object manager and agents), so
the head only ever starts inside a private network namespace whose one interface is `lo`
(`private_netns`): the Ray test pass runs in one (tests/test_ray_pass.py makes it, with
`netns`, and runs `pytest tests/ray` inside it with `ip netns exec`), and `head` refuses to
start anywhere else. The head also gets a PID namespace of its own (`unshare --pid --fork
--kill-child`): Ray starts each job's driver in a new session, so a process group cannot
hold the cluster, but a PID namespace does: when its first process (`ray start --block`)
ends, the kernel ends every process in it. Stopping is SIGTERM to that process (Ray drains
and stops its processes), then SIGKILL to `unshare` after a bound.

Nothing is cached: Ray is a Python package of this environment, and a head is up in ~5 s.
Where the cluster cannot be had (no Ray, no `ip netns` or `unshare`, not root) its tests are
skipped with the reason; with MLPROJECT_REQUIRE_ENGINES=1 (set by .ci/run) they fail instead.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ADDRESS = "http://127.0.0.1:8265"
NETNS_VAR = "MLPROJECT_TEST_RAY_NETNS"  # set by the outer pass: the namespace it runs in
START_TIMEOUT = 30  # seconds a job may stay PENDING on the test head
CPUS, GPUS, MEMORY = 2, 1, 2 * 2**30  # what the head says it has (its GPU is only a number)


class Unavailable(Exception):
    """The cluster cannot be had here: why."""


def _tool(name: str) -> str:
    found = shutil.which(name) or next((f"{d}/{name}" for d in ("/usr/sbin", "/sbin", "/usr/bin")
                                        if os.access(f"{d}/{name}", os.X_OK)), None)
    if found is None:
        raise Unavailable(f"`{name}` is not installed (iproute2 / util-linux)")
    return found


def ray_cli() -> str:
    """The `ray` command of this environment; Unavailable where Ray is not installed."""
    if importlib.util.find_spec("ray") is None:
        raise Unavailable("Ray is not installed in this environment (pip install "
                          "'mlproject[ray]')")
    cli = Path(sys.executable).parent / "ray"
    if not cli.exists():
        raise Unavailable(f"Ray is importable but its `ray` command is not at {cli}")
    return str(cli)


def check() -> None:
    """What a Ray pass needs on this machine; Unavailable with why."""
    ray_cli()
    _tool("ip")
    _tool("unshare")
    if os.geteuid() != 0:
        raise Unavailable("making a network namespace (ip netns add) needs root")


@contextmanager
def netns() -> Iterator[str]:
    """A private network namespace with only `lo`, up; deleted after."""
    ip = _tool("ip")
    name = f"mlp-ray-{os.getpid()}-{os.urandom(3).hex()}"
    made = subprocess.run([ip, "netns", "add", name], capture_output=True, text=True, timeout=30)
    if made.returncode != 0:
        raise Unavailable(f"ip netns add failed: {made.stderr.strip()}")
    try:
        up = subprocess.run([ip, "-n", name, "link", "set", "lo", "up"], capture_output=True,
                            text=True, timeout=30)
        if up.returncode != 0:
            raise Unavailable(f"ip -n {name} link set lo up failed: {up.stderr.strip()}")
        yield name
    finally:
        _kill_inside(ip, name)
        subprocess.run([ip, "netns", "delete", name], capture_output=True, timeout=30)


def _kill_inside(ip: str, name: str) -> None:
    """SIGKILL to whatever still runs in the namespace (a pass killed at its bound leaves its Ray
    head behind: the head is in a session of its own); deleting a namespace kills nothing."""
    for _ in range(3):
        listed = subprocess.run([ip, "netns", "pids", name], capture_output=True, text=True,
                                timeout=30)
        pids = [int(p) for p in listed.stdout.split() if p.isdigit()]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.5)


def private_netns() -> bool:
    """Whether this process's network namespace has no interface but `lo`."""
    try:
        with open("/proc/self/net/dev") as handle:
            lines = handle.read().splitlines()[2:]
    except OSError:
        return False
    return [line.split(":", 1)[0].strip() for line in lines] == ["lo"]


@dataclass(frozen=True)
class Cluster:
    """A running head: `address` is its Jobs API; `temp` its temporary directory (logs)."""
    address: str
    temp: Path
    pid: int  # of `unshare`, whose child is `ray start --block`

    def log_tail(self) -> str:
        try:
            return (self.temp / "head.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""


def _client(address: str) -> object:
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(address)


def _ready(process: subprocess.Popen[bytes], address: str, timeout: float) -> str | None:
    """None once the head's node is alive and a first job has run (the first job starts Ray's
    job agent: ~3 s that no test should pay); else why not."""
    from ray.util.state import list_nodes

    end = time.monotonic() + timeout
    why = "it did not answer"
    client = None
    while time.monotonic() < end:
        if process.poll() is not None:
            return f"`ray start` ended with {process.returncode}"
        try:
            client = client or _client(address)
            if any(n.state == "ALIVE" for n in list_nodes(address=address, timeout=5,
                                                         raise_on_missing_output=False)):
                break
        except Exception as exc:  # not up yet: connection refused, 503, ...
            why = str(exc)
        time.sleep(0.2)
    else:
        return f"the head was not up within {timeout:g}s: {why}"
    job = client.submit_job(entrypoint="true")  # type: ignore[attr-defined]
    while time.monotonic() < end:
        status = client.get_job_status(job)  # type: ignore[attr-defined]
        if status.is_terminal():
            return None if status.value == "SUCCEEDED" else f"a first job ended {status.value}"
        time.sleep(0.1)
    return f"a first job did not end within {timeout:g}s"


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []


def _stop(process: subprocess.Popen[bytes], grace: float = 30.0) -> None:
    """SIGTERM to `ray start --block` (the PID namespace's first process: Ray drains and stops
    its processes, and the namespace ends with it); SIGKILL to `unshare` after `grace`."""
    if process.poll() is None:
        for child in _children(process.pid):
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()  # --kill-child: its child, and with it the namespace, is killed
            process.wait(timeout=30)


@contextmanager
def head(cpus: int = CPUS, gpus: int = GPUS, memory: int = MEMORY) -> Iterator[Cluster]:
    """A Ray head in this (private) network namespace for the duration; stopped by pid."""
    cli = ray_cli()
    unshare = _tool("unshare")
    if not private_netns():
        raise Unavailable("this process is not in a private network namespace (only `lo`), and "
                          "Ray binds every interface: run the Ray tests through "
                          "tests/test_ray_pass.py, or inside `ip netns exec`")
    temp = Path(tempfile.mkdtemp(prefix="mlpray-", dir="/tmp"))  # short: Ray's socket paths
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0",
           # a job that can never start fails after this long instead of Ray's 15 minutes: a
           # stop asked of a pending job takes effect only then (runner/backends/ray/backend.py)
           "RAY_JOB_START_TIMEOUT_SECONDS": str(START_TIMEOUT),
           # the worker's environments and caches, on the cluster's side, not the user's
           "MLPROJECT_CACHE_DIR": str(temp / "cache"),
           # `python3` on the nodes is this environment's, where mlproject is installed
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', os.defpath)}"}
    for name in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"):
        env.pop(name, None)
    argv = [unshare, "--pid", "--fork", "--kill-child", "--mount-proc", cli, "start", "--head",
            "--block", "--node-ip-address", "127.0.0.1", "--port", "6379",
            "--dashboard-host", "127.0.0.1", "--dashboard-port", "8265",
            "--num-cpus", str(cpus), "--num-gpus", str(gpus), "--memory", str(memory),
            "--object-store-memory", str(100 * 2**20), "--temp-dir", str(temp),
            "--disable-usage-stats"]
    with open(temp / "head.log", "wb") as log:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, env=env, start_new_session=True)
    cluster = Cluster(ADDRESS, temp, process.pid)
    try:
        why = _ready(process, ADDRESS, 120)
        if why is not None:
            raise Unavailable(f"the Ray head did not start: {why}\n{cluster.log_tail()}")
        yield cluster
    finally:
        _stop(process)
        shutil.rmtree(temp, ignore_errors=True)


def unavailable(reason: str) -> None:
    """Skip, or where engines are required (CI), fail, with the reason."""
    if os.environ.get("MLPROJECT_REQUIRE_ENGINES") == "1":
        pytest.fail(f"the Ray cluster is required here and cannot be had: {reason}")
    pytest.skip(f"no Ray cluster: {reason}")
