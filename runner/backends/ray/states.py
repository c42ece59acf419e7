"""Ray's job statuses as record statuses, and what the record keeps of a job.

PENDING is queued (Ray's message says why: resources, the runtime environment being set up),
RUNNING is running, SUCCEEDED succeeded, FAILED failed with the entrypoint's exit code (Ray's
driver_exit_code, else the code its message names), STOPPED cancelled (someone ran `ray job
stop`, or mlproject stopped it: then the wait says why, timeout or cancel)."""
from __future__ import annotations

import datetime as dt
import re
import signal
from collections.abc import Mapping
from typing import Any

from mlproject.runner.backends.base import StepState
from mlproject.runner.state.status import Status

_CODE = re.compile(r"exit code (-?\d+)")


def exit_code(info: Mapping[str, Any]) -> int | None:
    code = info.get("driver_exit_code")
    if type(code) is int:
        return code
    found = _CODE.search(str(info.get("message") or ""))
    return int(found.group(1)) if found else None


def _first_line(message: Any) -> str | None:
    """Ray's message up to the log it appends ("last available logs ...")."""
    if not message:
        return None
    text = str(message).split("\n", 1)[0].strip()
    text = text.split(", last available logs", 1)[0]
    return text[:500] or None


def state_of(info: Mapping[str, Any] | None, submission_id: str, address: str) -> StepState:
    if info is None:
        return StepState(Status.CRASHED, reason=f"job {submission_id} no longer exists on the "
                         f"Ray cluster at {address} (deleted outside mlproject)")
    status = info.get("status")
    message = _first_line(info.get("message"))
    if status == "PENDING":
        return StepState(Status.QUEUED, reason=f"Ray: {message}" if message else "Ray: pending")
    if status == "RUNNING":
        return StepState(Status.RUNNING)
    if status == "SUCCEEDED":
        return StepState(Status.SUCCEEDED, 0)
    if status == "STOPPED":
        return StepState(Status.CANCELLED, reason=f"stopped through Ray ({message or 'ray job stop'})")
    if status == "FAILED":
        code = exit_code(info)
        signum = -code if code is not None and code < 0 else (
            code - 128 if code is not None and 128 < code < 128 + 65 else None)
        if code is not None and code < 0:  # Python's way of saying a signal killed it
            code = 128 + -code
        reason = f"Ray: {message}" if message else None
        if signum is not None:
            try:
                reason = f"killed by {signal.Signals(signum).name} ({reason or 'Ray'})"
            except ValueError:
                pass
        error_type = info.get("error_type")
        if error_type and error_type != "JOB_ENTRYPOINT_COMMAND_ERROR" and reason:
            reason = f"{reason} [{error_type}]"
        return StepState(Status.FAILED, code, reason, signum)
    return StepState(Status.CRASHED, reason=f"Ray reports job {submission_id} as {status!r}")


def facts_of(info: Mapping[str, Any] | None, submission_id: str, address: str,
             reserved: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What the record keeps of the job: Ray's ids, its state and message, the exit code, the
    node, the code package, and what was reserved (Ray's job details do not say it)."""
    if info is None:
        return {"address": address, "submission_id": submission_id, "gone": True}
    keep = ("submission_id", "job_id", "status", "error_type", "driver_exit_code",
            "driver_node_id", "start_time", "end_time", "working_dir")
    facts: dict[str, Any] = {"address": address, **{k: info.get(k) for k in keep}}
    facts["message"] = _first_line(info.get("message"))
    facts["reserved"] = dict(reserved or {})
    for key, ms in (("started_at", info.get("start_time")), ("finished_at", info.get("end_time"))):
        if type(ms) is int and ms > 0:  # Ray's milliseconds since the epoch
            facts[key] = dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat()
    return facts
