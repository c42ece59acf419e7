"""The local backend: the step's command in a session of its own, under a guard process.

Output streams to the run's log as it comes, and to the terminal as fast as the terminal takes
it (never waiting on it). Interruption and timeouts stop the whole step: SIGTERM, then SIGKILL
after a grace period. The guard (guard.py) stops what the command leaves behind when it exits,
and the whole step when mlproject dies, so a step never outlives its record.
"""
from __future__ import annotations

import os
import selectors
import shutil
import signal
import time
from dataclasses import replace
from typing import BinaryIO

from mlproject.runner.backends.base import Outcome, RunContext
from mlproject.runner.backends.local import gpus, guard
from mlproject.runner.backends.local.cgroups import Cgroup, MemoryLimit
from mlproject.runner.plan import Step
from mlproject.runner.state.status import Status
from mlproject.runner.util import console
from mlproject.runner.util.exitcodes import INTERRUPTED as EXIT_INTERRUPTED
from mlproject.runner.util.exitcodes import TIMEOUT as EXIT_TIMEOUT
from mlproject.spec.units import format_bytes

GRACE = 3.0  # seconds between SIGTERM and SIGKILL
DRAIN = 1.0  # seconds to collect output from a pipe held outside the guard's reach
FLUSH = 1.0  # seconds for the terminal to take the step's last output
EXIT_STATE = 2  # mlproject cannot keep the run's log or record (a full or read-only disk)


def _log(log: BinaryIO, data: bytes) -> str | None:
    """Append to the run's log; what went wrong when it cannot be written (a full disk)."""
    try:
        while data:
            data = data[log.write(data) or 0:]
    except OSError as exc:
        return f"the run's log cannot be written: {exc.strerror or exc}"
    return None


def _describe(wait_status: int) -> str:
    code = os.waitstatus_to_exitcode(wait_status)
    return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"


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
                console.say(f"warning: memory limit {format_bytes(step.resources.memory)} "
                            f"not enforced ({why})")
        if step.resources.timeout is not None:
            enforced["timeout"] = f"{step.resources.timeout:g}s, then the process group is stopped"
        try:
            outcome = self._execute(step, ctx, env, limit)
        finally:
            if limit:
                limit.remove()
        return replace(outcome, enforced=enforced)

    def _execute(self, step: Step, ctx: RunContext, env: dict[str, str],
                 limit: MemoryLimit | None) -> Outcome:
        shell = shutil.which("bash") or "/bin/sh"  # MLflow runs commands with `bash -c`
        try:
            log = open(ctx.run_dir / "log.txt", "ab", buffering=0)  # noqa: SIM115 (closed below)
        except OSError as exc:
            return Outcome(Status.FAILED, EXIT_STATE, reason=f"the run's log cannot be written: "
                                                          f"{exc.strerror or exc}")
        # One cgroup holds the whole step where one can be made; the memory one serves as well
        group: Cgroup | None = limit or Cgroup.track(f"mlproject-{ctx.run_id}")
        try:
            with log:
                return self._supervise(step, ctx, env, limit, group, shell, log)
        finally:
            if group and group is not limit:
                group.remove()

    def _supervise(self, step: Step, ctx: RunContext, env: dict[str, str],
                   limit: MemoryLimit | None, group: Cgroup | None, shell: str,
                   log: BinaryIO) -> Outcome:
        started = time.monotonic()
        if ctx.stopper.signal is not None:  # asked to stop before it started: it never starts
            return Outcome(Status.INTERRUPTED, EXIT_INTERRUPTED)
        guarded = guard.spawn([shell, "-c", step.command], ctx.cwd, env, group,
                              first=limit is not None)
        out, err = console.terminal(1), console.terminal(2)
        status: str | None = None
        problem: str | None = None
        kill_at: float | None = None
        killed = False
        reported = b""
        exited_at: float | None = None
        deadline = started + step.resources.timeout if step.resources.timeout else None
        selector = selectors.DefaultSelector()
        selector.register(guarded.stdout, selectors.EVENT_READ, out)
        selector.register(guarded.stderr, selectors.EVENT_READ, err)
        selector.register(guarded.status, selectors.EVENT_READ, None)
        try:
            # Until the guard has reported the step's end and the output is drained (or what
            # holds the pipes, outside the guard's reach, has had DRAIN seconds).
            while True:
                for key, _ in selector.select(timeout=0.02 if console.pending() else 0.1):
                    data = os.read(key.fd, 65536)
                    if not data:
                        selector.unregister(key.fd)
                        if key.data is None and exited_at is None:
                            exited_at = time.monotonic()
                        continue
                    if key.data is None:
                        reported += data
                        continue
                    key.data.write(data)
                    if problem is None:
                        problem = _log(log, data)
                out.flush()
                err.flush()
                now = time.monotonic()
                if status is None and problem is not None:
                    status = "state"
                    err.write(f"\nmlproject: {problem}: stopping the step\n".encode())
                elif status is None and ctx.stopper.signal is not None:
                    status = "interrupted"
                elif status is None and deadline is not None and now >= deadline:
                    status = "timeout"
                    msg = f"\nmlproject: timeout after {step.resources.timeout:g}s: stopping the step\n"
                    err.write(msg.encode())
                    problem = problem or _log(log, msg.encode())
                if status and kill_at is None:
                    # Ctrl-C reaches the step as SIGINT (a script may save a checkpoint on
                    # KeyboardInterrupt); SIGTERM, SIGHUP and a timeout as SIGTERM.
                    forwarded = signal.SIGINT if ctx.stopper.signal == signal.SIGINT else signal.SIGTERM
                    guarded.send(forwarded if status == "interrupted" else signal.SIGTERM)
                    kill_at = now + GRACE
                if kill_at is not None and (now >= kill_at or (ctx.stopper.count > 1 and not killed)):
                    guarded.send(signal.SIGKILL)
                    killed, kill_at = True, now + GRACE  # again later, for anything forked since
                if exited_at is not None and (len(selector.get_map()) == 0 or now - exited_at > DRAIN):
                    break
        finally:
            selector.close()
            for fd in (guarded.stdout, guarded.stderr, guarded.status, guarded.control):
                os.close(fd)
            _, guard_status = os.waitpid(guarded.pid, 0)
            if group:
                group.kill()  # the guard's sweep covers this, unless the guard itself was killed
        out.drain(FLUSH)
        err.drain(FLUSH)
        outcome = self._outcome(status, reported.decode(errors="replace"), guard_status, limit)
        if status == "state":
            outcome = replace(outcome, reason=f"stopped: {problem}")
        return replace(outcome, peak_memory=limit.peak() if limit else None)

    @staticmethod
    def _outcome(status: str | None, reported: str, guard_status: int,
                 limit: MemoryLimit | None) -> Outcome:
        word, _, detail = reported.strip().partition(" ")
        if word == "error":  # the guard could not start the command
            return Outcome(Status.FAILED, 127, reason=f"could not start: {detail}")
        if word != "status":
            return Outcome(Status.FAILED, EXIT_STATE, reason="mlproject's guard process ended "
                           f"({_describe(guard_status)}) before the step; the step was stopped")
        code = os.waitstatus_to_exitcode(int(detail))
        if status == "state":
            return Outcome(Status.FAILED, EXIT_STATE, -code if code < 0 else None)
        if status == "interrupted":
            return Outcome(Status.INTERRUPTED, EXIT_INTERRUPTED, -code if code < 0 else None)
        if status == "timeout":
            return Outcome(Status.TIMEOUT, EXIT_TIMEOUT, -code if code < 0 else None,
                           "the step ran past resources.timeout")
        if code == 0:
            return Outcome(Status.SUCCEEDED, 0)
        # bash -c reports a killed command as 128 + signal
        signum = -code if code < 0 else (code - 128 if code > 128 else None)
        reason = None
        if limit and limit.hit_limit() and signum == signal.SIGKILL:
            reason = f"killed: memory limit {format_bytes(limit.limit)} exceeded"
        elif code < 0:
            reason = f"killed by {signal.Signals(-code).name}"
        return Outcome(Status.FAILED, code if code > 0 else 128 - code, signum if code < 0 else None, reason)
