"""A fake engine behind the backend seam: no processes, a script per entry point of what the
engine answers poll after poll. It stands where docker, Slurm or Kubernetes will (the engine is
the boundary); execute, realize and the records it drives are the real ones.

Every call is logged in `calls` as (method, entry point), in order, so that a test can check
what execute asked of the engine and when.
"""
from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

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


@dataclass
class _Job:
    script: Script
    entry_point: str
    polls: int = 0
    cancelled: bool = False
    forced: bool = False


class FakeBackend:
    name = "fake"
    capabilities = Capabilities(shares_filesystem=True, builds_environments=False,
                                runs_containers=True, detaches=True, chains_steps=False,
                                writes_log=False, poll_interval=0.01)

    def __init__(self, project: Path | None = None, **scripts: Script) -> None:
        self.project = project
        self.scripts = scripts
        self.calls: list[tuple[str, str]] = []
        self.jobs: dict[str, _Job] = {}
        self.prepared: list[Submission] = []

    def _job(self, handle: Handle) -> _Job:
        return self.jobs[handle.id]

    def preflight(self, step: Step) -> list[str]:
        self.calls.append(("preflight", step.entry_point))
        return []

    def prepare(self, step: Step, ctx: RunContext) -> Submission:
        self.calls.append(("prepare", step.entry_point))
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
        self.calls.append(("submit", submission.entry_point))
        script = self.scripts[submission.entry_point]
        if script.refuse:
            raise SubmitError(f"the fake engine refused it: {script.refuse}", 2)
        job_id = f"job-{len(self.jobs) + 1}"
        self.jobs[job_id] = _Job(script, submission.entry_point)
        return Handle(self.name, submission.run_id, job_id, {"queue": "default"})

    def status(self, handle: Handle) -> StepState:
        job = self._job(handle)
        self.calls.append(("status", job.entry_point))
        job.polls += 1
        if job.cancelled:
            return StepState(Status.CANCELLED, reason="cancelled through the engine")
        script = job.script
        state = script.states[min(job.polls, len(script.states)) - 1]
        if script.signal_at == job.polls:
            signal.raise_signal(script.signum)  # a real signal, to mlproject's real handlers
        if state.status == Status.SUCCEEDED and self.project is not None:
            for name, text in script.writes.items():
                (self.project / name).write_text(text)
        return state

    def logs(self, handle: Handle, since: int = 0, follow: bool = False) -> Iterator[bytes]:
        job = self._job(handle)
        shown = b"".join(job.script.logs[:job.polls])
        if shown[since:]:
            yield shown[since:]

    def cancel(self, handle: Handle, force: bool = False) -> None:
        job = self._job(handle)
        self.calls.append(("cancel!" if force else "cancel", job.entry_point))
        job.cancelled = True
        job.forced = job.forced or force

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


__all__ = ["FakeBackend", "Script", "calls_of", "states"]
