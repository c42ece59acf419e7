"""A run's record from its first moment to its last: written when the step starts, completed when
it ends (whatever the end), and the step remembered as up to date when it succeeded."""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from mlproject.runner import __version__
from mlproject.runner.backends.base import Outcome
from mlproject.runner.plan import Plan, Step
from mlproject.runner.state import records, uptodate
from mlproject.runner.state.metrics import read as read_metrics
from mlproject.runner.state.status import Status
from mlproject.runner.util.console import say
from mlproject.runner.util.exitcodes import USAGE as EXIT_USAGE


def refuse(plan: Plan, step: Step, invocation: str, backend: str, reason: str) -> int:
    """A step that must not start: recorded as failed with its reason; the pipeline stops."""
    try:
        run_id, run_dir = records.new_run_dir(plan.project)
        record = initial(plan, step, run_id, invocation, backend, records.now())
        record.update(status="failed", exit_code=1, reason=reason, duration=0.0,
                      ended_at=record["started_at"])
        records.write(run_dir, record)
    except OSError as exc:
        say(f"{step.entry_point}: not started: {reason}\n(and not recorded: {exc})")
        return 1
    say(f"{step.entry_point}: failed before it started: {reason} (run {run_id})")
    return 1


def initial(plan: Plan, step: Step, run_id: str, invocation: str, backend: str,
                    started_at: Any) -> dict[str, Any]:
    return {
        "format": records.RECORD_FORMAT, "id": run_id, "invocation": invocation,
        "project": plan.project, "spec": plan.spec_file, "spec_digest": plan.spec_digest,
        "name": plan.name, "entry_point": step.entry_point, "status": "running",
        "started_at": started_at.isoformat(), "ended_at": None, "duration": None,
        "exit_code": None, "signal": None, "reason": None, "backend": backend,
        "command": step.command, "parameters": dict(step.parameters),
        "fingerprint": step.fingerprint, "code": dict(step.code),
        "environment": step.environment.to_json(),
        "resources": {"requested": step.resources.to_json(), "enforced": {}, "peak_memory": None},
        "data": {k: dict(v) for k, v in step.data.items()},
        "metrics_file": step.metrics, "metrics": {}, "outputs": {},
        "plan": plan.to_json(), "mlproject_version": __version__,
        "host": records.host_info(),
        "log": "log.txt",
    }


def finish(plan: Plan, step: Step, record: dict[str, Any], run_dir: Path, started: float,
           outcome: Outcome) -> Outcome:
    """Complete the record; the outcome as recorded (a success whose outputs are missing, or
    whose record cannot be written, is a failure)."""
    root = plan.project
    if step.metrics:
        record["metrics"], problem = read_metrics(Path(root) / step.metrics)
        if problem and outcome.status == "succeeded":
            record["metrics_error"] = problem
    found = uptodate.survey(root, step.outputs)
    record["outputs"] = found.hashes
    missing = [p for p, h in found.hashes.items() if h is None and p not in found.problems]
    if (missing or found.problems) and outcome.status == "succeeded":
        # as DVC fails a stage whose outputs are absent; an output that cannot be hashed (a
        # FIFO inside it, a link out of the project) fails it too, with why
        reasons = ([f"declared output{'s' if len(missing) > 1 else ''} not written: "
                    + ", ".join(missing)] if missing else []) + list(found.problems.values())
        outcome = replace(outcome, status=Status.FAILED, exit_code=1, reason="; ".join(reasons))
    record.update({
        "status": outcome.status, "exit_code": outcome.exit_code, "signal": outcome.signal,
        "reason": outcome.reason, "ended_at": records.now().isoformat(),
        "duration": round(time.monotonic() - started, 3),
    })
    record["resources"].update(enforced=outcome.enforced, peak_memory=outcome.peak_memory)
    try:
        records.write(run_dir, record)
    except OSError as exc:  # the disk filled up during the run: say so, and never claim success
        say(f"error: the record of run {record['id']} cannot be completed ({exc.strerror or exc}); "
            "it will be listed as crashed")
        if outcome.status == "succeeded":
            outcome = replace(outcome, status=Status.FAILED, exit_code=EXIT_USAGE,
                              reason="the run's record cannot be written")
    if outcome.status == "succeeded" and step.outputs:
        try:
            uptodate.remember(root, step.fingerprint, record["id"], record["outputs"])
        except OSError as exc:
            say(f"warning: not remembered as up to date ({exc.strerror or exc})")
    detail = f": {outcome.reason}" if outcome.reason else ""
    say(f"{step.entry_point}: {outcome.status} in {record['duration']:.2f}s, exit code "
        f"{outcome.exit_code}{detail} (run {record['id']})")
    return outcome
