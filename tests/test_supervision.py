"""A step never outlives mlproject, stops when asked, and a reader or a disk that does not keep up
never stalls supervision: real processes, real signals, real pipes, real read-only mounts."""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import mlproject_process
from mlproject.runner.state import records

PY = ".".join(map(str, sys.version_info[:2]))

# A step that leaves every kind of process behind: a child, a grandchild, a `setsid` daemon,
# a double-forked daemon in a process group of its own, each writing its pid.
SPAWNER = """
import os, subprocess, sys, time

def daemon(name):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.setpgid(0, 0)
            open(name, "w").write(str(os.getpid()))
            time.sleep(300)
        os._exit(0)

subprocess.Popen(["setsid", "sleep", "300"], start_new_session=True)
child = subprocess.Popen([sys.executable, "-c",
    "import subprocess, time; p = subprocess.Popen(['sleep', '300']); "
    "open('grandchild.pid', 'w').write(str(p.pid)); time.sleep(300)"])
open("child.pid", "w").write(str(child.pid))
daemon("daemon.pid")
os.system("setsid sh -c 'echo $$ > setsid.pid; exec sleep 300' &")
while not all(os.path.exists(n) and open(n).read() for n in
              ("grandchild.pid", "daemon.pid", "setsid.pid")):
    time.sleep(0.02)
open("ready", "w").write("1")
if "--stay" in sys.argv:
    time.sleep(300)
"""
PIDS = ("child.pid", "grandchild.pid", "daemon.pid", "setsid.pid")


def _alive(pid: int) -> bool:
    """Alive by state: a zombie is dead (PID 1 here does not always reap orphans)."""
    return records.process_start(pid) is not None


def _wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"{path} was not written within {timeout}s"
        time.sleep(0.02)


def _survivors(root: Path, within: float = 3.0) -> list[str]:
    """The step's processes still alive after `within` seconds (polled: they may go sooner)."""
    pids = {name: int((root / name).read_text()) for name in PIDS}
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and any(map(_alive, pids.values())):
        time.sleep(0.05)
    left = [f"{name} ({pid})" for name, pid in pids.items() if _alive(pid)]
    for pid in pids.values():  # never leak them into the rest of the suite
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    return left


def _spawner(project: Callable[..., Path], stay: bool, extra: str = "") -> Path:
    return project({"MLproject": f"""
        entry_points:
          main: {{command: "python spawner.py{' --stay' if stay else ''}"{extra}}}
    """, "spawner.py": SPAWNER})


def _only_record(root: Path) -> dict[str, Any]:
    found = records.list_runs(str(root))
    assert len(found) == 1, found
    return found[0]


def test_nothing_of_a_successful_step_survives_it(project: Callable[..., Path]) -> None:
    root = _spawner(project, stay=False)
    child = mlproject_process("run", ".", cwd=root, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert _survivors(root) == []
    assert _only_record(root)["status"] == "succeeded"


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_nothing_of_the_step_survives_mlproject(project: Callable[..., Path], signum: int) -> None:
    root = _spawner(project, stay=True)
    child = mlproject_process("run", ".", cwd=root, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        _wait_for(root / "ready")
        child.send_signal(signum)
        code = child.wait(timeout=20)
    finally:
        child.kill()
    assert code == (-signal.SIGKILL if signum == signal.SIGKILL else 130)
    assert _survivors(root) == []
    expected = "crashed" if signum == signal.SIGKILL else "interrupted"
    assert _only_record(root)["status"] == expected


@pytest.mark.slow
def test_a_timeout_stops_the_daemons_too(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = _spawner(project, stay=True, extra=", resources: {timeout: 3s}")
    assert cli("run", str(root)).code == 124
    assert _survivors(root) == []


def test_a_step_killed_by_a_signal_keeps_its_exact_status(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    # Through the guard, the wait status is the step's own (here: bash killed by SIGSEGV)
    root = project({"MLproject": 'entry_points: {main: {command: "kill -SEGV $$"}}\n'})
    assert cli("run", str(root)).code == 128 + signal.SIGSEGV
    record = _only_record(root)
    assert record["status"] == "failed" and record["signal"] == signal.SIGSEGV
    assert record["reason"] == "killed by SIGSEGV"


# --- a reader that does not read ---------------------------------------------------------------

LOUD = "python -c \\\"import sys; sys.stdout.write('x' * 4000000); sys.stdout.flush()\\\"; " \
       "echo done >&2; sleep 60"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["pipe", "socket"])
def test_a_stdout_nobody_reads_delays_neither_timeout_nor_exit(project: Callable[..., Path],
                                                               kind: str) -> None:
    root = project({"MLproject": f"""
        entry_points:
          main: {{command: "{LOUD}", resources: {{timeout: 2s}}}}
    """})
    # stdout is a pipe that is never read, as in `mlproject run . | sleep 60`; or a socket
    # (some CI runners), which cannot be reopened non-blocking through /proc
    ours, theirs = socket.socketpair() if kind == "socket" else (None, None)
    child = mlproject_process("run", ".", cwd=root, stderr=subprocess.PIPE,
                              stdout=theirs.fileno() if theirs else subprocess.PIPE)
    try:
        code = child.wait(timeout=20)
    finally:
        child.kill()
        for end in (ours, theirs):
            if end:
                end.close()
    assert code == 124
    record = _only_record(root)
    log = (records.runs_dir(str(root)) / record["id"] / "log.txt").read_bytes()
    assert log.count(b"x") == 4000000 and b"done" in log  # the log got everything
    assert record["status"] == "timeout"


@pytest.mark.slow
def test_ctrl_c_is_not_delayed_by_a_fifo_nobody_reads(project: Callable[..., Path], tmp_path: Path) -> None:
    root = project({"MLproject": f'entry_points: {{main: {{command: "{LOUD}"}}}}\n'})
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # held open, never read
    try:
        with open(fifo, "wb") as sink:
            child = mlproject_process("run", ".", cwd=root, stdout=sink, stderr=sink)
        try:
            _wait_for_log(root, b"done")
            child.send_signal(signal.SIGINT)
            code = child.wait(timeout=15)
        finally:
            child.kill()
    finally:
        os.close(reader)
    assert code == 130
    assert _only_record(root)["status"] == "interrupted"


def _wait_for_log(root: Path, needle: bytes, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = list(records.runs_dir(str(root)).glob("*/log.txt"))
        if logs and needle in logs[0].read_bytes():
            return
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} never reached the log")


def test_output_dropped_for_a_slow_reader_is_said_once(project: Callable[..., Path]) -> None:
    # The reader starts reading only after the step has ended: what overflowed is dropped from
    # the terminal, with a note, and the step is never held up by it.
    root = project({"MLproject": """
        entry_points:
          main: {command: "python -c \\"import sys; sys.stdout.write('y' * 6000000)\\""}
    """})
    child = mlproject_process("run", ".", cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for_log(root, b"y" * 6000000)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 0
    assert 0 < out.count(b"y") < 6000000
    assert err.count(b"of output not shown here") == 1
    assert "succeeded" in err.decode()


# --- an interrupt while the environment is built ------------------------------------------------

def _uv_building(pid: int) -> bool:
    """A uv process below `pid` that installs (not the resolution that comes before)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if cmdline and cmdline[0].endswith(b"uv") and (b"venv" in cmdline or b"sync" in cmdline
                                                       or b"install" in cmdline):
            return int(stat[stat.rfind(")") + 2:].split()[2]) > 0  # any session: ours is new
    return False


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupt_during_the_build_never_starts_the_step(project: Callable[..., Path], signum: int) -> None:
    root = project({"MLproject": f"""
        environments:
          train: {{python: "{PY}", requirements: requirements.txt}}
        entry_points:
          main: {{environment: train, command: "touch started; python -c pass"}}
    """, "requirements.txt": "six==1.16.0\nidna==3.7\n"})
    for _ in range(10):
        shutil.rmtree(root / ".mlproject", ignore_errors=True)
        cache = Path(os.environ["MLPROJECT_CACHE_DIR"])
        shutil.rmtree(cache / "envs", ignore_errors=True)
        child = mlproject_process("run", ".", cwd=root, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
        sent = False
        deadline = time.monotonic() + 120
        while child.poll() is None and time.monotonic() < deadline:
            if records.list_runs(str(root)) and _uv_building(child.pid):
                child.send_signal(signum)  # to mlproject alone, as `kill` or a scheduler does
                sent = True
                break
            time.sleep(0.005)
        _, err = child.communicate(timeout=60)
        if sent:
            break
    else:
        pytest.skip("the build always finished before the signal could be sent")
    assert child.returncode == 130, err
    assert not (root / "started").exists()
    record = _only_record(root)
    assert record["status"] == "interrupted" and record["exit_code"] == 130
    assert record["reason"] == (f"interrupted by {signal.Signals(signum).name} while "
                                "environment 'train' was being prepared")
    assert b"Traceback" not in err


# --- a state directory or a disk that cannot be written -----------------------------------------

def _can_mount() -> str | None:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return "needs root and unshare(1) for a private read-only bind mount"
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount --bind -o ro / /mnt"],
                           capture_output=True, text=True, check=False)
    return None if probe.returncode == 0 else f"no private bind mount here: {probe.stderr}"


needs_mount = pytest.mark.skipif(_can_mount() is not None, reason=str(_can_mount()))


def _in_namespace(root: Path, setup: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`mlproject ARGS` in a private mount namespace after `setup` (mounts nobody else sees):
    as root, chmod does not stop a write; a read-only mount does."""
    script = f"{setup} && exec {sys.executable} -m mlproject.runner {' '.join(args)}"
    return subprocess.run(["unshare", "-m", "sh", "-c", script], cwd=root, capture_output=True,
                          text=True, timeout=60, check=False)


STARTED = 'entry_points: {main: {command: "touch started"}}\n'


@needs_mount
def test_a_read_only_project_is_refused_before_the_step(project: Callable[..., Path]) -> None:
    root = project({"MLproject": STARTED})
    done = _in_namespace(root, f"mount --bind -o ro {root} {root}", "run", ".")
    assert done.returncode == 2, done.stderr
    assert done.stderr.endswith(f"the run cannot be recorded in {root}/.mlproject/runs: "
                                "Read-only file system\n"), done.stderr
    assert "Traceback" not in done.stderr and not (root / "started").exists()


@needs_mount
def test_a_read_only_state_directory_is_refused_before_the_step(project: Callable[..., Path]) -> None:
    root = project({"MLproject": STARTED})
    (root / ".mlproject" / "runs").mkdir(parents=True)
    state = root / ".mlproject"
    done = _in_namespace(root, f"mount --bind -o ro {state} {state}", "run", ".")
    assert done.returncode == 2, done.stderr
    assert "the run cannot be recorded" in done.stderr and "Read-only file system" in done.stderr
    assert "Traceback" not in done.stderr and not (root / "started").exists()


@needs_mount
def test_a_full_state_directory_is_refused_before_the_step(project: Callable[..., Path]) -> None:
    root = project({"MLproject": STARTED})
    state = root / ".mlproject"
    state.mkdir()
    # a tmpfs of one page, filled: a real ENOSPC
    fill = f"mount -t tmpfs -o size=4k none {state} && (cat /dev/zero > {state}/fill 2>/dev/null; true)"
    done = _in_namespace(root, fill, "run", ".")
    assert done.returncode == 2, done.stderr
    assert "No space left on device" in done.stderr and "Traceback" not in done.stderr
    assert not (root / "started").exists()


@pytest.mark.parametrize("blocker", ["file", "dangling-link"])
def test_a_state_directory_that_is_not_one(cli: Callable[..., Any], project: Callable[..., Path],
                                           blocker: str) -> None:
    root = project({"MLproject": STARTED})
    if blocker == "file":
        (root / ".mlproject").write_text("not a directory")
    else:
        (root / ".mlproject").symlink_to(root / "nowhere" / "deeper")
    result = cli("run", str(root))
    assert result.code == 2
    assert "mlproject: error: cannot start:\nthe run cannot be recorded in" in result.err
    assert not (root / "started").exists()


@needs_mount
def test_a_disk_that_fills_during_the_run_stops_the_step(project: Callable[..., Path]) -> None:
    root = project({"MLproject": """
        entry_points:
          main: {command: "python -c \\"print('z' * 600000)\\"; sleep 60; touch finished"}
    """})
    state = root / ".mlproject"
    state.mkdir()
    done = _in_namespace(root, f"mount -t tmpfs -o size=256k none {state}", "run", ".")
    assert done.returncode == 2, done.stderr
    assert "the run's log cannot be written: No space left on device: stopping the step" \
        in done.stderr
    assert "Traceback" not in done.stderr and not (root / "finished").exists()


def test_a_log_past_the_file_size_limit_stops_the_step_and_completes_the_record(
        project: Callable[..., Path]) -> None:
    # RLIMIT_FSIZE, SIGXFSZ ignored: a write past the limit fails with EFBIG, as on a full disk,
    # while the (small) record still fits.
    root = project({"MLproject": """
        entry_points:
          main: {command: "python -c \\"print('z' * 600000)\\"; sleep 60; touch finished"}
    """})

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    child = subprocess.Popen([sys.executable, "-m", "mlproject.runner", "run", "."], cwd=root,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=limit)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 2, err
    assert not (root / "finished").exists() and b"Traceback" not in err
    record = _only_record(root)
    assert record["status"] == "failed" and record["exit_code"] == 2
    assert record["reason"] == "stopped: the run's log cannot be written: File too large"
    assert json.loads((records.runs_dir(str(root)) / record["id"] / "run.json").read_text())[
        "ended_at"]


def _cgroup_here() -> str | None:
    from mlproject.runner.backends.local.cgroups import Cgroup

    group = Cgroup.track(f"mlproject-probe-{os.getpid()}")
    if group is None:
        return "no cgroup can be made here (the subreaper alone keeps track)"
    group.remove()
    return None


def _guard_of(pid: int) -> int:
    """mlproject's child in a session of its own: the guard."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2:].split()
            if int(fields[1]) == pid and fields[3] == entry and fields[0] not in "ZX":
                return int(entry)
    raise AssertionError(f"no guard below {pid}")


@pytest.mark.slow
@pytest.mark.skipif(_cgroup_here() is not None, reason=str(_cgroup_here()))
def test_the_cgroup_stops_the_step_when_the_guard_itself_is_killed(project: Callable[..., Path]) -> None:
    root = project({"MLproject": """
        entry_points:
          main: {command: "sleep 0.5; setsid sleep 300 & echo $! > setsid.pid; sleep 300"}
    """})
    child = mlproject_process("run", ".", cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for(root / "setsid.pid")
        daemon = int((root / "setsid.pid").read_text())
        os.kill(_guard_of(child.pid), signal.SIGKILL)
        _, err = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == 2, err
    deadline = time.monotonic() + 3
    while _alive(daemon) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(daemon)
    record = _only_record(root)
    assert record["reason"] == ("mlproject's guard process ended (killed by SIGKILL) before the "
                                "step; the step was stopped")


@pytest.mark.slow
@needs_mount
def test_no_verb_tracebacks_on_a_read_only_project(project: Callable[..., Path]) -> None:
    root = project({"MLproject": """
        python_env: python_env.yaml
        entry_points: {main: {command: "touch started"}}
    """, "python_env.yaml": "dependencies: [six]\n"})
    ro = f"mount --bind -o ro {root} {root}"
    for verb in (["plan", "."], ["validate", "."], ["runs"], ["data", "status", "."],
                 ["run", ".", "--dry-run"], ["lock", "."]):
        done = _in_namespace(root, ro, *verb)
        assert "Traceback" not in done.stderr, (verb, done.stderr)
        assert done.returncode in (0, 2, 3, 4), (verb, done.returncode, done.stderr)
    done = _in_namespace(root, ro, "lock", ".")  # resolves (PyPI), then cannot write the lock
    assert done.returncode == 4  # exitcodes.INCOMPLETE
    assert "cannot write its lock: Read-only file system" in done.stderr, done.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_before_any_step_starts_ends_mlproject_as_interrupted(
        project: Callable[..., Path], signum: int) -> None:
    """Before `execute` puts its handlers in place (here: reading a plan from a pipe that stays
    open, as `run` may be cloning or resolving), SIGTERM and SIGHUP end it as Ctrl-C does: exit
    130, nothing recorded, no traceback."""
    root = project({"MLproject": """
        entry_points:
          main: {command: "python -c pass"}
    """})
    proc = mlproject_process("run", "--plan", "-", str(root), cwd=root, stdin=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    time.sleep(1.0)  # started and waiting on its standard input
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert (proc.returncode, err) == (130, b"")
    assert not (root / ".mlproject" / "runs").exists() or not any((root / ".mlproject" / "runs").iterdir())
