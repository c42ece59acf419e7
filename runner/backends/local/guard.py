"""The guard: a small process between mlproject and a step, so that nothing of the step outlives
its run, however mlproject ends (normally, by SIGTERM or Ctrl-C, or by SIGKILL).

mlproject forks it (a fork, not a new interpreter: ~1 ms instead of ~20). It is a child subreaper,
so every process the step leaves behind (`&`, double forks, `setsid` daemons) is re-parented to it
and stays in view; it learns that mlproject died from PR_SET_PDEATHSIG and from the end of its
control pipe; and when the step exits, or mlproject dies, it stops every descendant (and all of
the step's cgroup, where one could be made). It reports the step's exact wait status on a pipe.

mlproject talks to it through the control pipe: each byte is a signal to deliver to the whole step.
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from dataclasses import dataclass

from mlproject.runner.backends.local.cgroups import Cgroup

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_ORPHANED = signal.SIGUSR1  # the guard's death signal for its parent: checked against getppid()
GRACE_ORPHANED = 1.0  # seconds a step gets between SIGTERM and SIGKILL once mlproject is gone
SWEEP_LIMIT = 5.0  # seconds to sweep descendants; only a process stuck in the kernel lasts longer


@dataclass
class Guarded:
    """mlproject's side of a guarded step: the output pipes, the control and status pipes."""

    pid: int  # the guard's
    stdout: int
    stderr: int
    control: int
    status: int

    def send(self, signum: int) -> None:
        try:
            os.write(self.control, bytes([signum]))
        except OSError:
            pass  # the guard has exited: nothing is left to signal


def _prctl(option: int, value: int) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(option, value, 0, 0, 0)  # best effort: a kernel without it leaves the other means


def spawn(argv: list[str], cwd: str, env: dict[str, str], group: Cgroup | None,
          first: bool = False) -> Guarded:
    """Start the guard, which starts the step (inside `group`, from its first instruction when
    `first`); mlproject keeps the read ends of its output."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    ctl_r, ctl_w = os.pipe()
    st_r, st_w = os.pipe()
    parent = os.getpid()
    try:
        pid = _fork()
    except OSError:
        for fd in (out_r, out_w, err_r, err_w, ctl_r, ctl_w, st_r, st_w):
            os.close(fd)
        raise
    if pid == 0:  # the guard: never returns into mlproject's code
        code = 70
        try:
            for fd in (out_r, err_r, ctl_w, st_r):
                os.close(fd)
            code = _guard(parent, argv, cwd, env, (out_w, err_w, ctl_r, st_w), group, first)
        finally:
            os._exit(code)
    for fd in (out_w, err_w, ctl_r, st_w):
        os.close(fd)
    return Guarded(pid, out_r, err_r, ctl_w, st_r)


def _fork() -> int:
    """os.fork, waiting out an audit hook that refuses it for a moment: filelock (imported by
    some of mlproject's dependencies) refuses a fork while another thread changes a lock's
    descriptors, which steps started from several threads (a sweep, `run --jobs`) can meet.
    Refused for over a second: an OSError, so the step is recorded as one that could not start."""
    import time

    for _ in range(100):
        try:
            return os.fork()
        except RuntimeError as exc:
            refused = exc
            time.sleep(0.01)
    raise OSError(f"fork refused: {refused}")


def _guard(parent: int, argv: list[str], cwd: str, env: dict[str, str],
           fds: tuple[int, int, int, int], group: Cgroup | None, first: bool) -> int:
    out_w, err_w, ctl_r, st_w = fds
    os.setsid()  # Ctrl-C and signals to mlproject's group are mlproject's to forward, not ours
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    for signum in (signal.SIGCHLD, _ORPHANED, signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        # handlers, not SIG_IGN: an ignored signal would stay ignored in the step after exec
        signal.signal(signum, lambda *_: None)
    _arm(parent)  # before the step starts: what it orphans at once is still ours
    if os.getppid() != parent:  # mlproject died before the death signal was armed
        return 0
    # A memory limit holds from the first byte: the guard joins and the step starts inside.
    # A group that only tracks is joined by the step once it runs: moving a process into a
    # cgroup waits for an RCU grace period (5-10 ms), which need not delay the start.
    inside = group.join() if group and first else False
    try:
        # no preexec_fn: the step is started with vfork, the cheap way
        step = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out_w,
                                stderr=err_w, start_new_session=True)
    except OSError as exc:
        _report(st_w, f"error {exc}")
        return 0
    finally:
        if inside and group:
            group.leave()  # the step stays inside; the guard must not be swept with it
    os.close(out_w)
    os.close(err_w)
    if group and not first:
        group.join(step.pid)
    status = _supervise(parent, step.pid, ctl_r, wake_r, group)
    _sweep(wake_r, group)
    if group and os.getppid() != parent:
        group.remove()  # mlproject, which would have, is gone
    _report(st_w, f"status {status}")
    return 0


def _arm(parent: int) -> None:
    # PDEATHSIG fires when the thread that forked the guard ends: execute() forks from the main
    # thread, which lives as long as mlproject does
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    _prctl(_PR_SET_PDEATHSIG, _ORPHANED)


def _report(fd: int, line: str) -> None:
    try:
        os.write(fd, f"{line}\n".encode())
    except OSError:
        pass  # mlproject is gone: no one to tell


def _supervise(parent: int, step: int, ctl_r: int, wake_r: int, group: Cgroup | None) -> int:
    """Until the step's main process exits: deliver mlproject's signals; stop it if mlproject dies."""
    kill_at: float | None = None
    watched = [ctl_r, wake_r]
    while True:
        status = _reap(step)
        if status is not None:
            return status
        if kill_at is not None and time.monotonic() >= kill_at:
            _signal_all(step, signal.SIGKILL, group)
            kill_at = time.monotonic() + 0.5  # again, for what was forked meanwhile
        ready, _, _ = select.select(watched, [], [], 0.5 if kill_at else 5.0)
        orphaned = os.getppid() != parent
        if wake_r in ready:
            try:
                os.read(wake_r, 4096)
            except OSError:
                pass
        if ctl_r in ready:
            data = os.read(ctl_r, 64)
            if not data:
                orphaned = True
                watched = [wake_r]
            for signum in data:
                _signal_all(step, signum, group)
        if orphaned and kill_at is None:
            _signal_all(step, signal.SIGTERM, group)
            kill_at = time.monotonic() + GRACE_ORPHANED


def _reap(step: int) -> int | None:
    """Reap every child that has ended (the guard is their subreaper); the step's wait status."""
    found = None
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return found
        if pid == 0:
            return found
        if pid == step:
            found = status


def _descendants() -> dict[int, int]:
    """Every live process below the guard and its process group, from /proc (a subreaper keeps
    them all below it)."""
    children: dict[int, list[tuple[int, int]]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if fields[0] not in (b"Z", b"X"):
            children.setdefault(int(fields[1]), []).append((int(name), int(fields[2])))
    found: dict[int, int] = {}
    todo = [os.getpid()]
    while todo:
        for child, group in children.get(todo.pop(), []):
            found[child] = group
            todo.append(child)
    return found


def _signal_all(step: int, signum: int, group: Cgroup | None) -> None:
    try:
        os.killpg(step, signum)  # the step's own group first: what Ctrl-C would reach
    except OSError:
        pass
    # then the rest (daemons in sessions of their own): once each, as a second SIGINT
    # could cut short a KeyboardInterrupt handler that saves a checkpoint
    below = _descendants()
    targets = {pid for pid, pgid in below.items() if pgid != step}
    targets |= {pid for pid in (group.pids() if group else []) if pid not in below and pid != step}
    targets.discard(os.getpid())
    for pid in targets:
        try:
            os.kill(pid, signum)
        except OSError:
            pass


def _has_children() -> bool:
    try:
        return os.waitpid(-1, os.WNOHANG) is not None  # (0, 0): some still running
    except ChildProcessError:
        return False


def _sweep(wake_r: int, group: Cgroup | None) -> None:
    """The step has exited: SIGKILL whatever it left behind, until nothing is left."""
    deadline = time.monotonic() + SWEEP_LIMIT
    while time.monotonic() < deadline:
        _reap(-1)
        left_in_group = [p for p in group.pids() if p != os.getpid()] if group else []
        if not left_in_group and not _has_children():
            return
        if group:
            group.kill()
        for pid in _descendants():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        select.select([wake_r], [], [], 0.05)
        try:
            os.read(wake_r, 4096)
        except OSError:
            pass
