"""A real single-node Slurm for the tests: Debian's `slurm-wlm` and `munge` (apt-get installed
when missing), a munged, a slurmctld and a slurmd started by pid with setsid, every one on
127.0.0.1 with a private configuration, state, spool, socket and ports; `SLURM_CONF` points the
clients at it. Stopped by pid at the end of the session.

What the configuration holds, and why (measured on Slurm 22.05):
- `CommunicationParameters=NoCtldInAddrAny,NoInAddrAny`: else slurmctld listens on every
  interface.
- `SelectTypeParameters=CR_Core_Memory` and `DefMemPerCPU`: memory is a consumable resource,
  and a job that asks for none does not take all of the node's (else jobs run one at a time).
- `EnforcePartLimits=ALL`: a job no node can run is refused by sbatch (else it pends forever).
- `JobAcctGatherParams=OverMemoryKill` with `proctrack/linuxproc` (no cgroup plugin: there is no
  systemd here) and a 1 s gather: a job past its --mem is killed (OUT_OF_MEMORY).
- two fake GPUs (`gres.conf`: `Name=gpu File=/dev/tty[0-1]`): Slurm hands them out and sets
  CUDA_VISIBLE_DEVICES as it does for real ones.
- `SchedulerParameters=batch_sched_delay=0`: else a batch job may wait 3 s to be scheduled.
- `MinJobAge=3600`: there is no accounting database, so a finished job is read with scontrol,
  which forgets it MinJobAge seconds after it ended.

Where Slurm cannot be had (no apt-get, not root), the tests are skipped with the reason; with
MLPROJECT_REQUIRE_ENGINES=1 (set by .ci/run) they fail instead.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGES = ("slurm-wlm", "munge")
NODE = "mlpnode"
PARTITION = "debug"
CPUS = 2
MEMORY_MB = 2048  # what the node offers (below what this machine has: slurmd checks)
DEF_MEM_PER_CPU = 100  # MB


class Unavailable(Exception):
    """Slurm cannot be had here: why."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _lock_path() -> Path:
    base = os.environ.get("MLPROJECT_TEST_CACHE") or os.path.expanduser("~/.cache/mlproject-tests")
    path = Path(base) / "slurm"
    path.mkdir(parents=True, exist_ok=True)
    return path / ".install.lock"


def install() -> None:
    """Debian's slurm-wlm and munge, installed once (apt-get) where they are missing."""
    if all(shutil.which(tool) for tool in ("slurmctld", "slurmd", "sbatch", "munged")):
        return
    if os.getuid() != 0:
        raise Unavailable("slurm-wlm and munge are not installed, and installing them needs "
                          "root: apt-get install -y slurm-wlm munge")
    if shutil.which("apt-get") is None:
        raise Unavailable("slurm-wlm and munge are not installed and there is no apt-get")
    with open(_lock_path(), "w") as handle:  # pytest-xdist workers install once
        fcntl.flock(handle, fcntl.LOCK_EX)
        if shutil.which("slurmctld") and shutil.which("munged"):
            return
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for argv in (["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES],
                     ["apt-get", "update"],
                     ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]):
            try:
                done = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise Unavailable(f"{' '.join(argv)}: {exc}") from None
            if done.returncode == 0 and argv[1] == "install":
                return
        raise Unavailable(f"apt-get install {' '.join(PACKAGES)} failed: "
                          f"{(done.stderr or done.stdout).strip()[-800:]}")


@dataclass(frozen=True)
class Cluster:
    """A running single-node Slurm: `conf` is its slurm.conf (SLURM_CONF for the clients)."""
    conf: str
    state: Path
    node: str = NODE
    partition: str = PARTITION

    def environ(self) -> dict[str, str]:
        return {"SLURM_CONF": self.conf}

    def tool(self, *argv: str, timeout: float = 30,
             check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **self.environ()}, stdin=subprocess.DEVNULL)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)}: {done.stderr.strip()}")
        return done

    def jobs(self) -> dict[str, dict[str, str]]:
        """The jobs squeue shows (pending and running), by id: name, state, dependency, reason."""
        done = self.tool("squeue", "-h", "-o", "%i|%j|%T|%E|%r|%k")
        found = {}
        for line in done.stdout.splitlines():
            job, name, state, dependency, reason, comment = line.split("|", 5)
            found[job] = {"name": name, "state": state, "dependency": dependency,
                          "reason": reason, "comment": comment}
        return found

    def job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job -o ID` as fields (for what the tests check)."""
        line = self.tool("scontrol", "show", "job", "-o", job_id).stdout.strip()
        fields = {}
        for word in line.split(" "):
            key, sep, value = word.partition("=")
            if sep:
                fields[key] = value
        return fields

    def cancel_all(self) -> None:
        self.tool("scancel", "--full", "--partition", self.partition, check=False)


def _config(state: Path, ctld_port: int, slurmd_port: int) -> str:
    host = socket.gethostname()
    return f"""\
ClusterName=mlptest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={state}/munge.socket
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
StateSaveLocation={state}/ctld
SlurmdSpoolDir={state}/spool
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU={DEF_MEM_PER_CPU}
EnforcePartLimits=ALL
GresTypes=gpu
MinJobAge=3600
KillWait=2
InactiveLimit=0
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
MpiDefault=none
SwitchType=switch/none
NodeName={NODE} NodeAddr=127.0.0.1 NodeHostname={host} CPUs={CPUS} RealMemory={MEMORY_MB} Gres=gpu:2 State=UNKNOWN
PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
"""


class _Daemons:
    """munged, slurmctld and slurmd of one cluster, each by its pid (its own session)."""

    def __init__(self) -> None:
        # a short path: the munge socket's name must fit in sun_path
        self.state = Path(tempfile.mkdtemp(prefix="mlpslurm-", dir="/tmp"))
        self.state.chmod(0o755)  # munged refuses a socket directory others may write
        for sub in ("ctld", "spool"):
            (self.state / sub).mkdir()
        self.conf = self.state / "slurm.conf"
        self.conf.write_text(_config(self.state, _free_port(), _free_port()))
        (self.state / "gres.conf").write_text(f"NodeName={NODE} Name=gpu File=/dev/tty[0-1]\n")
        self.processes: list[subprocess.Popen[bytes]] = []
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    def _start(self, argv: list[str], name: str) -> subprocess.Popen[bytes]:
        with open(self.state / f"{name}.out", "wb") as out:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                       stderr=subprocess.STDOUT, env=self.env,
                                       start_new_session=True, cwd=self.state)
        self.processes.append(process)
        return process

    def start(self) -> None:
        key = self.state / "munge.key"
        done = subprocess.run(["mungekey", "--create", f"--keyfile={key}"], capture_output=True,
                              text=True, timeout=30)
        if done.returncode != 0:
            raise Unavailable(f"mungekey failed: {done.stderr.strip()}")
        key.chmod(0o600)
        munged = self._start(["munged", "--foreground", "--force", f"--socket={self.state}/munge.socket",
                              f"--key-file={key}", f"--pid-file={self.state}/munged.pid",
                              f"--log-file={self.state}/munged.log",
                              f"--seed-file={self.state}/munged.seed"], "munged")
        self._until(lambda: (self.state / "munge.socket").exists(), munged, "munged", 10)
        ctld = self._start(["slurmctld", "-D", "-i", "-f", str(self.conf)], "slurmctld")
        self._until(lambda: self._answers(), ctld, "slurmctld", 20)
        slurmd = self._start(["slurmd", "-D", "-N", NODE, "-f", str(self.conf)], "slurmd")
        self._until(self._node_idle, slurmd, "slurmd", 30)

    def _answers(self) -> bool:
        done = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=15,
                              env=self.env)
        return "is UP" in done.stdout

    def _node_idle(self) -> bool:
        done = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True,
                              timeout=15, env=self.env)
        return done.stdout.strip() in ("idle", "mixed", "allocated")

    def _until(self, ready: object, process: subprocess.Popen[bytes], name: str,
               timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if process.poll() is not None:
                raise Unavailable(f"{name} exited ({process.returncode}): {self.tail(name)}")
            try:
                if ready():  # type: ignore[operator]
                    return
            except subprocess.TimeoutExpired:
                pass
            time.sleep(0.1)
        raise Unavailable(f"{name} was not ready within {timeout:g}s: {self.tail(name)}")

    def tail(self, name: str) -> str:
        text = ""
        for suffix in (".out", ".log"):
            try:
                text += (self.state / f"{name}{suffix}").read_text(errors="replace")[-1500:]
            except OSError:
                pass
        return text

    def stop(self) -> None:
        """slurmd, slurmctld, munged: SIGTERM by pid, SIGKILL to their groups if they linger."""
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=10)
        self.processes.clear()

    def remove(self) -> None:
        shutil.rmtree(self.state, ignore_errors=True)


@contextmanager
def running() -> Iterator[Cluster]:
    """A single-node Slurm for the duration; stopped by pid after."""
    if os.getuid() != 0:
        raise Unavailable("slurmd must run as root (it starts jobs as their user)")
    install()
    daemons = _Daemons()
    try:
        daemons.start()
        cluster = Cluster(str(daemons.conf), daemons.state)
        yield cluster
        cluster.cancel_all()
    finally:
        daemons.stop()
        daemons.remove()


def unavailable(reason: str) -> None:
    """Skip, or where engines are required (CI), fail, with the reason."""
    if os.environ.get("MLPROJECT_REQUIRE_ENGINES") == "1":
        pytest.fail(f"Slurm is required here and cannot be had: {reason}")
    pytest.skip(f"no Slurm: {reason}")


if __name__ == "__main__":  # a cluster by hand: prints its SLURM_CONF, stops on Enter
    with running() as made:
        print(f"export SLURM_CONF={made.conf}", flush=True)
        try:
            input()
        except EOFError:
            signal.pause()
