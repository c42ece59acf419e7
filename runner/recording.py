"""A run's record from its first moment to its last: written when the step starts, written again
when it ends (whatever the end), and the step remembered as up to date when it succeeded. Each
moment makes a new RunRecord from the last (`dataclasses.replace`), as with Outcome."""
from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from mlproject.runner import __version__
from mlproject.runner.backends.base import Handle, Outcome, Submission
from mlproject.runner.envs.kinds import EnvKind
from mlproject.runner.plan import Plan, Step
from mlproject.runner.state import records, uptodate
from mlproject.runner.state.metrics import read as read_metrics
from mlproject.runner.state.record import EnvironmentUse, ResourceUse, RunRecord
from mlproject.runner.state.status import Status
from mlproject.runner.util.console import say
from mlproject.runner.util.exitcodes import NO_RECORD as EXIT_NO_RECORD
from mlproject.runner.util.exitcodes import STEP_FAILED as EXIT_STEP_FAILED


def refuse(plan: Plan, step: Step, invocation: str, backend: str, reason: str) -> int:
    """A step that must not start: recorded as failed with its reason; the pipeline stops, and
    the code is a step's failure (1): the step was reached, and it did not succeed."""
    try:
        run_id, run_dir = records.new_run_dir(plan.project)
        record = initial(plan, step, run_id, invocation, backend, records.now())
        records.write(run_dir, replace(record, status=Status.FAILED, exit_code=EXIT_STEP_FAILED,
                                       reason=reason, duration=0.0, ended_at=record.started_at))
    except OSError as exc:
        say(f"{step.entry_point}: not started: {reason}\n(and not recorded: {exc})")
        return EXIT_STEP_FAILED
    say(f"{step.entry_point}: failed before it started: {reason} (run {run_id})")
    return EXIT_STEP_FAILED


def initial(plan: Plan, step: Step, run_id: str, invocation: str, backend: str,
            started_at: dt.datetime, settings: Mapping[str, Any] | None = None,
            status: Status = Status.RUNNING, reason: str | None = None) -> RunRecord:
    """The record of a step that starts now (status running), or that waits for its turn
    (queued: a detached pipeline's later steps, whose ids are given out at once)."""
    env = step.environment.to_json()
    return RunRecord(
        id=run_id, invocation=invocation, project=plan.project,
        spec=plan.spec_file, spec_digest=plan.spec_digest, name=plan.name,
        entry_point=step.entry_point, started_at=started_at.isoformat(), backend=backend,
        command=step.command, parameters=dict(step.parameters), fingerprint=step.fingerprint,
        code=dict(step.code),
        environment=EnvironmentUse(step.environment.name, EnvKind(step.environment.kind), env),
        resources=ResourceUse(step.resources.to_json()),
        data={k: dict(v) for k, v in step.data.items()}, metrics_file=step.metrics,
        plan=plan.to_json(), mlproject_version=__version__, host=records.host_info(),
        settings=dict(settings or {}), status=status, reason=reason,
    )


def submitted(record: RunRecord, submission: Submission, handle: Handle) -> RunRecord:
    """The record once the engine has the step: what was submitted, and how to find it."""
    return replace(record, submission=submission.to_json(), handle=handle.to_json())


def built(record: RunRecord, prefix: str, built_now: bool,
          recipe: Mapping[str, Any] | None) -> RunRecord:
    """The record once the step's environment is built (or found built) at `prefix`."""
    return replace(record, environment=replace(
        record.environment, prefix=prefix, built_now=built_now, recipe=dict(recipe or {})))


def finish(plan: Plan, step: Step, record: RunRecord, run_dir: Path, started: float,
           outcome: Outcome, ended_at: dt.datetime | None = None) -> Outcome:
    """Write the record of the ended step; the outcome as recorded (a success whose outputs are
    missing, or whose record cannot be written, is a failure). `ended_at`: when the engine says
    it ended, where that was learnt later (reconcile); `started` then counts to that moment."""
    root = plan.project
    if outcome.fingerprint and outcome.fingerprint != step.fingerprint:
        # decided where it ran (a chained step): what it received is known only there
        step = replace(step, fingerprint=outcome.fingerprint)
        record = replace(record, fingerprint=outcome.fingerprint)
    from mlproject.runner import tracking
    from mlproject.runner.tracking import mlflowstore

    tracked = tracking.read(run_dir)
    if outcome.tracked is not None and not (tracked.series or tracked.params or tracked.mlflow):
        tracked = tracking.from_json(outcome.tracked)  # logged on an engine's machine
    metrics: dict[str, float] = tracked.last  # what the code logged, the file's over it
    problems = [tracked.problem] if tracked.problem else []
    if step.metrics:
        in_file, problem = read_metrics(Path(root) / step.metrics)
        metrics.update(in_file)
        if problem and outcome.status == Status.SUCCEEDED:
            problems.insert(0, problem)
    metrics_error = "; ".join(problems) or None
    found = uptodate.survey(root, step.outputs)
    missing = [p for p, h in found.hashes.items() if h is None and p not in found.problems]
    if (missing or found.problems) and outcome.status == Status.SUCCEEDED:
        # as DVC fails a stage whose outputs are absent; an output that cannot be hashed (a
        # FIFO inside it, a link out of the project) fails it too, with why
        reasons = ([f"declared output{'s' if len(missing) > 1 else ''} not written: "
                    + ", ".join(missing)] if missing else []) + list(found.problems.values())
        outcome = replace(outcome, status=Status.FAILED, exit_code=EXIT_STEP_FAILED,
                          reason="; ".join(reasons))
    ended = replace(
        record, status=outcome.status, exit_code=outcome.exit_code, signal=outcome.signal,
        reason=outcome.reason, ended_at=(ended_at or records.now()).isoformat(),
        duration=round(time.monotonic() - started, 3), metrics=metrics,
        metrics_error=metrics_error, outputs=found.hashes, series=tracked.series,
        logged_params=tracked.params, artifacts=tracked.artifacts,
        mlflow=mlflowstore.completed(record.mlflow, tracked.mlflow),
        resources=replace(record.resources, enforced={k: str(v) for k, v in
                                                      outcome.enforced.items()},
                          peak_memory=outcome.peak_memory),
        engine={**record.engine, **outcome.engine})
    if outcome.environment is not None:  # built by the engine's worker, where the step ran
        env = outcome.environment
        ended = built(ended, str(env.get("prefix")), bool(env.get("built_now")),
                      env.get("recipe"))
    # before the record, which then says how it ended; a sweep's points explore, and are not
    # what the lock holds (the run of the point chosen is: `mlproject run -P ...`)
    if outcome.status == Status.SUCCEEDED and record.sweep is None:
        outcome = _locked(root, step, ended, outcome)
        ended = replace(ended, status=outcome.status, exit_code=outcome.exit_code,
                        reason=outcome.reason)
    try:
        records.write(run_dir, ended)
    except OSError as exc:  # the disk filled up during the run: say so, and never claim success
        say(f"error: the record of run {record.id} cannot be completed ({exc.strerror or exc}); "
            "it will be listed as crashed")
        if outcome.status == Status.SUCCEEDED:
            outcome = replace(outcome, status=Status.FAILED, exit_code=EXIT_NO_RECORD,
                              reason="the run's record cannot be written")
    if outcome.status == Status.SUCCEEDED and step.outputs:
        try:
            uptodate.remember(root, step.fingerprint, record.id, found.hashes)
        except OSError as exc:
            say(f"warning: not remembered as up to date ({exc.strerror or exc})")
    detail = f": {outcome.reason}" if outcome.reason else ""
    say(f"{step.entry_point}: {outcome.status} in {ended.duration:.2f}s, exit code "
        f"{outcome.exit_code}{detail} (run {record.id})")
    return outcome


# steps that end at once (`run --jobs`) each rewrite the lock: one at a time in this process
_LOCK_WRITER = threading.Lock()


def _locked(root: str, step: Step, record: RunRecord, outcome: Outcome) -> Outcome:
    """The step's entry written to mlproject.lock; a lock that cannot be written fails the run
    (exit 2, as a record that cannot be): the step succeeded, what Git would hold of it did not."""
    from mlproject.runner.gitops import lockfile

    try:
        with _LOCK_WRITER:
            lockfile.write_entry(root, step, record)
    except lockfile.LockError as exc:
        return replace(outcome, status=Status.FAILED, exit_code=EXIT_NO_RECORD,
                       reason=f"its entry in the lock is not written: {exc}")
    return outcome


def relock(root: str, step: Step, run_id: str) -> None:
    """An up-to-date step's entry, from the run that makes it so: written where the lock lacks
    it or holds another (a lock deleted, or made before this run), else the lock is untouched."""
    from mlproject.runner.gitops import lockfile

    record = records.record_of(root, run_id)
    if record is None:
        return
    try:
        with _LOCK_WRITER:
            lockfile.write_entry(root, step, record)
    except lockfile.LockError as exc:
        say(f"warning: {step.entry_point}: its entry in the lock is not written: {exc}")
