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
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

from mlproject.runner import tracking
from mlproject.runner.backends.base import (
    Capabilities,
    Handle,
    Outcome,
    RunContext,
    StepState,
    Stopper,
    Submission,
    SubmitError,
)
from mlproject.runner.backends.local import gpus, guard
from mlproject.runner.backends.local.cgroups import Cgroup, MemoryLimit
from mlproject.runner.plan import Step
from mlproject.runner.state import records
from mlproject.runner.state.status import Status
from mlproject.runner.util import console
from mlproject.runner.util.exitcodes import INTERRUPTED as EXIT_INTERRUPTED
from mlproject.runner.util.exitcodes import NO_RECORD as EXIT_STATE  # log/record unwritable
from mlproject.runner.util.exitcodes import TIMEOUT as EXIT_TIMEOUT
from mlproject.spec.units import format_bytes

GRACE = 3.0  # seconds between SIGTERM and SIGKILL
DRAIN = 1.0  # seconds to collect output from a pipe held outside the guard's reach
FLUSH = 1.0  # seconds for the terminal to take the step's last output


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


@dataclass
class _Live:
    """A step this process started and supervises: what its wait reads and cleans up."""
    guarded: guard.Guarded
    log: BinaryIO
    group: Cgroup | None
    limit: MemoryLimit | None
    enforced: dict[str, object]
    started: float  # time.monotonic() when it was started: its timeout counts from here
    cancel: int | None = None  # the signal `cancel` asked for; SIGKILL: at once


_checked: dict[str, float] = {}  # run id -> when its cancel marker was last looked for


def _asked_to_cancel(submission: Submission, now: float) -> bool:
    """Whether `mlproject cancel` asked for the step to stop (looked at ten times a second)."""
    if now - _checked.get(submission.run_id, 0.0) < 0.1:
        return False
    _checked[submission.run_id] = now
    return records.cancel_requested(Path(submission.log).parent)


def _alive(pid: Any, start: Any) -> bool:
    """Whether the process a handle names still runs (its start time tells a reused pid apart)."""
    return isinstance(pid, int) and start is not None and records.process_start(pid) == start


class LocalBackend:
    """The step's command as a guarded process group of this mlproject. It never outlives
    its supervisor, so `wait` here is the efficient one (the guard's pipes, read directly);
    `status`, `logs` and `cancel` also answer for a handle from another mlproject process."""

    name = "local"
    capabilities = Capabilities(shares_filesystem=True, builds_environments=False,
                                runs_containers=False, detaches=False, chains_steps=False,
                                writes_log=True, poll_interval=0.1)

    def __init__(self) -> None:
        self._live: dict[str, _Live] = {}

    def preflight(self, step: Step, root: str) -> list[str]:
        wanted = step.resources.gpu
        if wanted:
            found = gpus.visible()
            if len(found) < wanted:
                return [f"entry point {step.entry_point!r} asks for {wanted} GPU"
                        f"{'s' if wanted > 1 else ''}, but {len(found)} "
                        f"{'is' if len(found) == 1 else 'are'} visible on this machine"]
        return []

    def prepare(self, step: Step, ctx: RunContext) -> Submission:
        sets = {**step.env, **ctx.env}
        sets.update(tracking.step_variables(sets))  # `from mlproject import log`, in any env
        if "PYTHONUNBUFFERED" not in os.environ:
            sets.setdefault("PYTHONUNBUFFERED", "1")  # a log that streams, not one at exit
        if step.environment.kind == "local":
            # `python` in the command is the interpreter mlproject runs in, as with a venv active
            bindir = os.path.dirname(step.environment.detail)
            sets["PATH"] = os.pathsep.join([bindir, {**os.environ, **sets}.get("PATH", os.defpath)])
        enforcement: dict[str, str] = {}
        res = step.resources
        if res.gpu is not None:
            sets["CUDA_VISIBLE_DEVICES"] = ",".join(gpus.visible()[: res.gpu])
            enforcement["gpu"] = f"CUDA_VISIBLE_DEVICES={sets['CUDA_VISIBLE_DEVICES']}"
        if res.cpu is not None:
            threads = {**os.environ, **sets}.get("OMP_NUM_THREADS", "?")
            enforcement["cpu"] = f"thread variables set to {threads}; cores not pinned"
        if res.memory is not None:
            enforcement["memory"] = (f"cgroup limit {format_bytes(res.memory)}, where this "
                                     "machine lets mlproject make one (else: not enforced, "
                                     "with why)")
        if res.timeout is not None:
            enforcement["timeout"] = f"{res.timeout:g}s, then the process group is stopped"
        notes: tuple[str, ...] = ()
        if ctx.planned and step.environment.kind in ("python", "conda"):
            notes = (f"the variables of environment {step.environment.name!r} (PATH first) are "
                     "added when it is built or reused",)
        shell = shutil.which("bash") or "/bin/sh"  # MLflow runs commands with `bash -c`
        return Submission(self.name, step.entry_point, ctx.run_id,
                          (*ctx.wrapper, shell, "-c", step.command), ctx.cwd, sets, res,
                          enforcement, str(ctx.run_dir / "log.txt"), inherits_env=True,
                          timeout=res.timeout, notes=notes)

    def submit(self, submission: Submission) -> Handle:
        enforced: dict[str, object] = dict(submission.enforcement)
        memory = submission.resources.memory
        limit = None
        if memory is not None:
            limit, why = MemoryLimit.create(f"mlproject-{submission.run_id}", memory)
            if limit:
                enforced["memory"] = f"cgroup v{limit.version} limit {format_bytes(limit.limit)}"
            else:
                enforced["memory"] = f"not enforced: {why}"
                console.say(f"warning: memory limit {format_bytes(memory)} not enforced ({why})")
        try:
            log = open(submission.log, "ab", buffering=0)  # noqa: SIM115 (closed by wait)
        except OSError as exc:
            if limit:
                limit.remove()
            raise SubmitError(f"the run's log cannot be written: {exc.strerror or exc}",
                              EXIT_STATE) from None
        # One cgroup holds the whole step where one can be made; the memory one serves as well
        group: Cgroup | None = limit or Cgroup.track(f"mlproject-{submission.run_id}")
        try:
            guarded = guard.spawn(list(submission.argv), submission.cwd,
                                  {**os.environ, **submission.env}, group,
                                  first=limit is not None)
        except OSError as exc:  # no fork left: the command could not be started at all
            log.close()
            if group:
                group.remove()
            raise SubmitError(f"could not start: {exc}", 127) from None
        self._live[submission.run_id] = _Live(guarded, log, group, limit, enforced,
                                              time.monotonic())
        me = os.getpid()
        return Handle(self.name, submission.run_id, str(guarded.pid), {
            "pid": guarded.pid, "pid_start": records.process_start(guarded.pid),
            "supervisor": me, "supervisor_start": records.process_start(me),
            "log": submission.log})

    def status(self, handle: Handle) -> StepState:
        live = self._live.get(handle.run_id)
        if live is not None:
            return StepState(Status.RUNNING)
        if _alive(handle.data.get("pid"), handle.data.get("pid_start")):
            return StepState(Status.RUNNING)
        # A local step never outlives the mlproject that supervised it, which wrote its end
        return StepState(Status.CRASHED, reason="no longer running, and not supervised by this "
                         "process: its record says how it ended")

    def logs(self, handle: Handle, since: int = 0, follow: bool = False) -> Iterator[bytes]:
        try:
            log = open(str(handle.data.get("log")), "rb")  # noqa: SIM115 (closed below)
        except OSError:
            return
        with log:
            log.seek(since)
            while True:
                data = log.read(65536)
                if data:
                    yield data
                    continue
                if not follow or not _alive(handle.data.get("pid"), handle.data.get("pid_start")):
                    rest = log.read()  # what came between the last read and the end
                    if rest:
                        yield rest
                    return
                time.sleep(0.1)

    def cancel(self, handle: Handle, force: bool = False) -> None:
        live = self._live.get(handle.run_id)
        if live is not None:  # this process supervises it: its wait stops the step
            live.cancel = signal.SIGKILL if force else signal.SIGTERM
            return
        # Another mlproject supervises it: ask that one, which stops the step and records it
        # (a second signal there means: at once)
        supervisor = handle.data.get("supervisor")
        if isinstance(supervisor, int) and _alive(supervisor, handle.data.get("supervisor_start")):
            for _ in range(2 if force else 1):
                try:
                    os.kill(supervisor, signal.SIGTERM)
                except OSError:
                    return

    def wait(self, submission: Submission, handle: Handle, stopper: Stopper) -> Outcome:
        live = self._live.get(handle.run_id)
        if live is None:  # not ours: the generic wait, by status
            from mlproject.runner.backends.wait import poll

            return poll(self, submission, handle, stopper)
        try:
            with live.log:
                outcome = self._supervise(submission, live, stopper)
        finally:
            if live.group and live.group is not live.limit:
                live.group.remove()
            if live.limit:
                live.limit.remove()
            del self._live[handle.run_id]
            _checked.pop(handle.run_id, None)
        return replace(outcome, enforced=live.enforced)

    def _supervise(self, submission: Submission, live: _Live, stopper: Stopper) -> Outcome:
        guarded, log, limit, group = live.guarded, live.log, live.limit, live.group
        timeout = submission.timeout
        out, err = console.terminal(1), console.terminal(2)
        status: str | None = None
        problem: str | None = None
        kill_at: float | None = None
        killed = False
        reported = b""
        exited_at: float | None = None
        deadline = live.started + timeout if timeout else None
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
                elif status is None and stopper.signal is not None:
                    status = "interrupted"
                elif status is None and (live.cancel is not None or _asked_to_cancel(
                        submission, now)):
                    status = "cancelled"
                elif status is None and deadline is not None and now >= deadline:
                    status = "timeout"
                    msg = f"\nmlproject: timeout after {timeout:g}s: stopping the step\n"
                    err.write(msg.encode())
                    problem = problem or _log(log, msg.encode())
                if status and kill_at is None:
                    # Ctrl-C reaches the step as SIGINT (a script may save a checkpoint on
                    # KeyboardInterrupt); SIGTERM, SIGHUP and a timeout as SIGTERM.
                    forwarded = signal.SIGINT if stopper.signal == signal.SIGINT else signal.SIGTERM
                    guarded.send(forwarded if status == "interrupted" else signal.SIGTERM)
                    kill_at = now + GRACE
                if kill_at is not None and (now >= kill_at or (not killed and (
                        stopper.count > 1 or live.cancel == signal.SIGKILL))):
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
        if status == "cancelled":
            return Outcome(Status.CANCELLED, EXIT_INTERRUPTED, -code if code < 0 else None,
                           "cancelled")
        if status == "timeout":
            return Outcome(Status.TIMEOUT, EXIT_TIMEOUT, -code if code < 0 else None,
                           "the step ran past resources.timeout")
        if code == 0:
            return Outcome(Status.SUCCEEDED, 0)
        # bash -c reports a killed command as 128 + signal
        signum = -code if code < 0 else (code - 128 if code > 128 else None)
        reason = None
        if limit and limit.hit_limit() and signum == signal.SIGKILL:
            return Outcome(Status.OOM, 128 + signal.SIGKILL, signum if code < 0 else None,
                           f"killed: memory limit {format_bytes(limit.limit)} exceeded")
        if code < 0:
            reason = f"killed by {signal.Signals(-code).name}"
        return Outcome(Status.FAILED, code if code > 0 else 128 - code, signum if code < 0 else None, reason)
