"""The local backend: the step's command in a process group of its own on this machine.

Output streams to the terminal and to the run's log as it comes. Interruption and timeouts stop
the whole group: SIGTERM, then SIGKILL after a grace period. Processes the command leaves
behind when it exits are stopped too, so a step never outlives its record.
"""
from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import sys
import time

from mlproject.runner import gpus
from mlproject.runner.backends.base import Outcome, RunContext
from mlproject.runner.limits import MemoryLimit
from mlproject.runner.plan import Step
from mlproject.spec.units import format_bytes

GRACE = 3.0  # seconds between SIGTERM and SIGKILL
DRAIN = 1.0  # seconds to collect output from what the command left behind
EXIT_TIMEOUT = 124
EXIT_INTERRUPTED = 130


def _write_all(fd: int, data: bytes) -> None:
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:
        pass  # the terminal went away: the log still has everything


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


class LocalBackend:
    name = "local"

    def preflight(self, step: Step) -> list[str]:
        wanted = step.resources.gpu
        if wanted:
            found = gpus.visible()
            if len(found) < wanted:
                return [f"entry point {step.entry_point!r} asks for {wanted} GPU"
                        f"{'s' if wanted > 1 else ''}, but {len(found)} "
                        f"{'is' if len(found) == 1 else 'are'} visible on this machine"]
        return []

    def run(self, step: Step, ctx: RunContext) -> Outcome:
        env = {**os.environ, **step.env, **ctx.env}
        env.setdefault("PYTHONUNBUFFERED", "1")  # a log that streams, not one that arrives at exit
        if step.environment.kind == "local":
            # `python` in the command is the interpreter mlproject runs in, as with a venv active
            bindir = os.path.dirname(step.environment.detail)
            env["PATH"] = os.pathsep.join([bindir, env.get("PATH", os.defpath)])
        enforced: dict[str, object] = {}
        if step.resources.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus.visible()[: step.resources.gpu])
            enforced["gpu"] = f"CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']}"
        if step.resources.cpu is not None:
            enforced["cpu"] = f"thread variables set to {env['OMP_NUM_THREADS']}; cores not pinned"
        limit = None
        if step.resources.memory is not None:
            limit, why = MemoryLimit.create(f"mlproject-{ctx.run_id}", step.resources.memory)
            if limit:
                enforced["memory"] = f"cgroup v{limit.version} limit {format_bytes(limit.limit)}"
            else:
                enforced["memory"] = f"not enforced: {why}"
                sys.stderr.write(f"mlproject: warning: memory limit "
                                 f"{format_bytes(step.resources.memory)} not enforced ({why})\n")
        if step.resources.timeout is not None:
            enforced["timeout"] = f"{step.resources.timeout:g}s, then the process group is stopped"
        try:
            outcome = self._execute(step, ctx, env, limit)
        finally:
            if limit:
                limit.remove()
        outcome.enforced = enforced
        return outcome

    def _execute(self, step: Step, ctx: RunContext, env: dict[str, str],
                 limit: MemoryLimit | None) -> Outcome:
        shell = shutil.which("bash") or "/bin/sh"  # MLflow runs commands with `bash -c`
        started = time.monotonic()
        child = subprocess.Popen(
            [shell, "-c", step.command], cwd=ctx.cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
            preexec_fn=limit.join if limit else None,
        )
        pgid = child.pid  # a new session: the child leads its own process group
        status: str | None = None
        kill_at: float | None = None
        exited_at: float | None = None
        deadline = started + step.resources.timeout if step.resources.timeout else None
        selector = selectors.DefaultSelector()
        assert child.stdout and child.stderr
        selector.register(child.stdout, selectors.EVENT_READ, 1)
        selector.register(child.stderr, selectors.EVENT_READ, 2)
        with open(ctx.run_dir / "log.txt", "ab", buffering=0) as log:
            # Until the command has exited and its output is drained (or what it left behind
            # has had DRAIN seconds to let go of the pipes).
            while True:
                if selector.get_map():
                    for key, _ in selector.select(timeout=0.1):
                        data = os.read(key.fd, 65536)
                        if not data:
                            selector.unregister(key.fileobj)
                            continue
                        _write_all(key.data, data)
                        log.write(data)
                else:  # the output is closed: wait on the command itself, waking to check signals
                    try:
                        child.wait(timeout=0.05)
                    except subprocess.TimeoutExpired:
                        pass
                now = time.monotonic()
                if status is None and ctx.stopper.signal is not None:
                    status = "interrupted"
                elif status is None and deadline is not None and now >= deadline:
                    status = "timeout"
                    msg = f"\nmlproject: timeout after {step.resources.timeout:g}s: stopping the step\n"
                    _write_all(2, msg.encode())
                    log.write(msg.encode())
                if status and kill_at is None:
                    # Ctrl-C reaches the step as SIGINT (a script may save a checkpoint on
                    # KeyboardInterrupt); SIGTERM, SIGHUP and a timeout as SIGTERM.
                    forwarded = signal.SIGINT if ctx.stopper.signal == signal.SIGINT else signal.SIGTERM
                    _signal_group(pgid, forwarded if status == "interrupted" else signal.SIGTERM)
                    kill_at = now + GRACE
                if kill_at is not None and (now >= kill_at or ctx.stopper.count > 1):
                    _signal_group(pgid, signal.SIGKILL)
                if exited_at is None and child.poll() is not None:
                    exited_at = now
                if exited_at is not None and (not selector.get_map() or now - exited_at > DRAIN):
                    break
        code = child.wait()  # reaped before the group is killed: its status stays its own
        _signal_group(pgid, signal.SIGKILL)  # nothing of the step outlives it
        selector.close()
        child.stdout.close()
        child.stderr.close()
        outcome = self._outcome(status, code, limit)
        outcome.peak_memory = limit.peak() if limit else None
        return outcome

    @staticmethod
    def _outcome(status: str | None, code: int, limit: MemoryLimit | None) -> Outcome:
        if status == "interrupted":
            return Outcome("interrupted", EXIT_INTERRUPTED, -code if code < 0 else None)
        if status == "timeout":
            return Outcome("timeout", EXIT_TIMEOUT, -code if code < 0 else None,
                           "the step ran past resources.timeout")
        if code == 0:
            return Outcome("succeeded", 0)
        # bash -c reports a killed command as 128 + signal
        signum = -code if code < 0 else (code - 128 if code > 128 else None)
        reason = None
        if limit and limit.hit_limit() and signum == signal.SIGKILL:
            reason = f"killed: memory limit {format_bytes(limit.limit)} exceeded"
        elif code < 0:
            reason = f"killed by {signal.Signals(-code).name}"
        return Outcome("failed", code if code > 0 else 128 - code, signum if code < 0 else None, reason)
