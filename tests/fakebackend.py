"""A fake engine behind the backend seam: no processes, a script per entry point of what the
engine answers poll after poll. It stands where docker, Slurm or Kubernetes will (the engine is
the boundary); execute, realize and the records it drives are the real ones.

Every call is logged in `calls` as (method, entry point), in order, so that a test can check
what execute asked of the engine and when.

With `state` (a directory), the engine keeps its jobs in files there, as a real engine keeps
them outside mlproject: another process (a detached supervisor, `mlproject runs`, `logs`,
`cancel`, `wait`) asks about the same job. Its scripts are then read from `state/scripts.json`
(`write_scripts`), its calls appended to `state/calls` (`engine_calls`), and a job does not
move past its first state while the file `state/hold-<entry point>` exists (`hold`, `release`).
`tests/fakecli.py` is `mlproject` with this engine registered as the backend `fake`.
"""
from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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
from mlproject.runner.backends.wait import poll
from mlproject.runner.plan import Step
from mlproject.runner.state.status import Status
from mlproject.runner.util.files import write_atomic


@dataclass
class Script:
    """What the engine answers for one entry point: `states[i]` at the (i+1)-th poll (the last
    one repeats), one chunk of `logs` more at each poll, `writes` put into the project when it
    succeeds (the engine shares this filesystem), a real signal raised in this process at poll
    `signal_at` (the user's Ctrl-C or a SIGTERM while the step runs)."""
    states: list[StepState]
    logs: list[bytes] = field(default_factory=list)
    writes: dict[str, str] = field(default_factory=dict)
    signal_at: int | None = None
    signum: int = signal.SIGINT
    refuse: str | None = None  # submit raises SubmitError with this reason


def states(*names: str, exit_code: int | None = None, reason: str | None = None) -> list[StepState]:
    """StepStates from status names; the last one gets `exit_code` and `reason`."""
    made = [StepState(Status(n)) for n in names]
    made[-1] = StepState(made[-1].status, exit_code, reason)
    return made


def _script_json(script: Script) -> dict[str, Any]:
    return {"states": [[s.status.value, s.exit_code, s.reason, s.signal] for s in script.states],
            "logs": [chunk.decode("latin-1") for chunk in script.logs], "writes": script.writes,
            "refuse": script.refuse}


def _script_of(data: dict[str, Any]) -> Script:
    return Script([StepState(Status(s), code, reason, signum)
                   for s, code, reason, signum in data["states"]],
                  [chunk.encode("latin-1") for chunk in data["logs"]], dict(data["writes"]),
                  refuse=data["refuse"])


def write_scripts(state: Path, **scripts: Script) -> None:
    """What the file-backed engine in `state` answers, for every process that makes one."""
    state.mkdir(parents=True, exist_ok=True)
    write_atomic(state / "scripts.json", json.dumps({ep: _script_json(s)
                                                     for ep, s in scripts.items()}))


def hold(state: Path, entry_point: str) -> None:
    (state / f"hold-{entry_point}").write_text("")


def release(state: Path, entry_point: str) -> None:
    (state / f"hold-{entry_point}").unlink(missing_ok=True)


def engine_calls(state: Path) -> list[tuple[str, str, int]]:
    """(method, entry point, pid of the caller) of every call the engine in `state` got."""
    try:
        lines = (state / "calls").read_text().splitlines()
    except FileNotFoundError:
        return []
    return [(m, ep, int(pid)) for m, ep, pid in (line.split(" ") for line in lines)]


@dataclass
class _Job:
    script: Script
    entry_point: str
    polls: int = 0
    cancelled: bool = False
    forced: bool = False
    cwd: str = ""
    removed: bool = False


class FakeBackend:
    name = "fake"
    capabilities = Capabilities(shares_filesystem=True, builds_environments=False,
                                runs_containers=True, detaches=True, chains_steps=False,
                                writes_log=False, poll_interval=0.01)

    def __init__(self, project: Path | None = None, state: Path | None = None,
                 **scripts: Script) -> None:
        self.project = project
        self.state = state
        if state is not None and not scripts and (state / "scripts.json").exists():
            scripts = {ep: _script_of(data) for ep, data in
                       json.loads((state / "scripts.json").read_text()).items()}
        self.scripts = scripts
        self.calls: list[tuple[str, str]] = []
        self.jobs: dict[str, _Job] = {}
        self.prepared: list[Submission] = []
        self.after: dict[str, tuple[str, ...]] = {}  # entry point -> the jobs it was chained to
        self.seen: dict[str, list[tuple[str, str | None]]] = {}  # its record at each status call

    def _call(self, method: str, entry_point: str) -> None:
        self.calls.append((method, entry_point))
        if self.state is not None:
            with open(self.state / "calls", "a") as out:
                out.write(f"{method} {entry_point} {os.getpid()}\n")

    def _job(self, handle: Handle) -> _Job:
        if self.state is None:
            return self.jobs[handle.id]
        data = json.loads((self.state / "jobs" / f"{handle.id}.json").read_text())
        return _Job(_script_of(data["script"]), data["entry_point"], data["polls"],
                    data["cancelled"], data["forced"], data["cwd"], data["removed"])

    def _save(self, job_id: str, job: _Job) -> None:
        if self.state is None:
            self.jobs[job_id] = job
            return
        data = {**asdict(job), "script": _script_json(job.script)}
        write_atomic(self.state / "jobs" / f"{job_id}.json", json.dumps(data))

    def _held(self, job: _Job) -> bool:
        return self.state is not None and (self.state / f"hold-{job.entry_point}").exists()

    def preflight(self, step: Step, root: str) -> list[str]:
        self._call("preflight", step.entry_point)
        return []

    def prepare(self, step: Step, ctx: RunContext) -> Submission:
        self._call("prepare", step.entry_point)
        self.after[step.entry_point] = tuple(h.id for h in ctx.after)
        enforcement = {name: "not enforced: the fake engine enforces nothing"
                       for name, value in step.resources.to_json().items()
                       if value is not None and name != "timeout"}
        if step.resources.timeout is not None:
            enforcement["timeout"] = f"{step.resources.timeout:g}s, by the waiting mlproject"
        made = Submission(self.name, step.entry_point, ctx.run_id,
                          ("fake-engine", "submit", *ctx.wrapper, step.command), ctx.cwd,
                          {**step.env, **ctx.env}, step.resources, enforcement,
                          str(ctx.run_dir / "log.txt"), timeout=step.resources.timeout)
        self.prepared.append(made)
        return made

    def submit(self, submission: Submission) -> Handle:
        self._call("submit", submission.entry_point)
        script = self.scripts[submission.entry_point]
        if script.refuse:
            raise SubmitError(f"the fake engine refused it: {script.refuse}", 2)
        job_id = f"job-{len(self.jobs) + 1}" if self.state is None else f"job-{submission.run_id}"
        self._save(job_id, _Job(script, submission.entry_point, cwd=submission.cwd))
        return Handle(self.name, submission.run_id, job_id, {"queue": "default"})

    def status(self, handle: Handle) -> StepState:
        job = self._job(handle)
        self._call("status", job.entry_point)
        if self.project is not None:  # what another process reading the record would see now
            found = json.loads((self.project / ".mlproject" / "runs" / handle.run_id /
                                "run.json").read_text())
            self.seen.setdefault(job.entry_point, []).append((found["status"], found["reason"]))
        if job.removed:
            return StepState(Status.CRASHED, reason="the engine has no such job any more")
        if job.polls == 0 or not self._held(job):
            job.polls += 1
            self._save(handle.id, job)
        if job.cancelled:
            return StepState(Status.CANCELLED, reason="cancelled through the engine")
        script = job.script
        state = script.states[min(job.polls, len(script.states)) - 1]
        if script.signal_at == job.polls:
            signal.raise_signal(script.signum)  # a real signal, to mlproject's real handlers
        project = self.project or (Path(job.cwd) if job.cwd else None)
        if state.status == Status.SUCCEEDED and project is not None:
            for name, text in script.writes.items():
                (project / name).write_text(text)
        return state

    def logs(self, handle: Handle, since: int = 0, follow: bool = False) -> Iterator[bytes]:
        while True:
            job = self._job(handle)
            shown = b"".join(job.script.logs[:job.polls])
            if shown[since:]:
                yield shown[since:]
                since = len(shown)
            ended = job.cancelled or job.removed or (job.polls > 0 and job.script.states[
                min(job.polls, len(job.script.states)) - 1].status.final)
            if not follow or ended:
                return
            time.sleep(0.02)

    def cancel(self, handle: Handle, force: bool = False) -> None:
        job = self._job(handle)
        self._call("cancel!" if force else "cancel", job.entry_point)
        job.cancelled = True
        job.forced = job.forced or force
        self._save(handle.id, job)

    def engine_facts(self, handle: Handle) -> dict[str, object]:
        """As docker reports the container that ran, for a record completed by reconcile."""
        job = self._job(handle)
        self._call("engine_facts", job.entry_point)
        return {"job": handle.id, "polls": job.polls}

    def cleanup(self, handle: Handle) -> None:
        """As docker removes the container once its end is recorded."""
        job = self._job(handle)
        self._call("cleanup", job.entry_point)
        job.removed = True
        self._save(handle.id, job)

    def wait(self, submission: Submission, handle: Handle, stopper: Stopper) -> Outcome:
        return poll(self, submission, handle, stopper)


def calls_of(fake: FakeBackend, entry_point: str) -> list[str]:
    """The methods called for one entry point, repeated status polls folded as `status*N`."""
    folded: list[str] = []
    for method, ep in fake.calls:
        if ep != entry_point:
            continue
        if folded and folded[-1].split("*")[0] == method == "status":
            count = int(folded[-1].partition("*")[2] or 1) + 1
            folded[-1] = f"status*{count}"
        else:
            folded.append(method)
    return folded


__all__ = ["FakeBackend", "Script", "calls_of", "engine_calls", "hold", "release", "states",
           "write_scripts"]
