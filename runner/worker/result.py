"""The worker's report of a step (what the engine cannot say: the exit code as the step's own,
an oom of the step's cgroup, the environment built, the fingerprint decided on the worker), and
how the submitting side reads it and completes the engine's outcome with it."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlproject.runner.state.status import Status

if TYPE_CHECKING:
    from mlproject.runner.backends.base import Outcome, Submission
    from mlproject.runner.worker.request import WorkerRequest

FORMAT = "mlproject.worker-result/1"
MAX_SIZE = 4 * 1024 * 1024  # a result is a few kilobytes; a bigger file is not one


@dataclass(frozen=True)
class WorkerResult:
    run_id: str
    status: Status
    exit_code: int
    signal: int | None = None
    reason: str | None = None
    enforced: dict[str, str] = field(default_factory=dict)
    peak_memory: int | None = None
    environment: dict[str, Any] | None = None  # prefix, built_now, recipe
    fingerprint: str | None = None
    up_to_date: str | None = None  # the run that made a chained step up to date: not run again
    host: str | None = None  # where it ran
    # what the step's code logged (tracking.to_json), where the run directory is not shared
    tracked: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "run_id": self.run_id, "status": self.status.value,
                "exit_code": self.exit_code, "signal": self.signal, "reason": self.reason,
                "enforced": dict(self.enforced), "peak_memory": self.peak_memory,
                "environment": self.environment, "fingerprint": self.fingerprint,
                "up_to_date": self.up_to_date, "host": self.host,
                **({"tracked": self.tracked} if self.tracked is not None else {})}

    @classmethod
    def from_json(cls, data: Any) -> WorkerResult | None:
        """The result, or None where `data` is not one (damaged, another version's)."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return None
        try:
            status = Status(data["status"])
            code = data["exit_code"]
            checks = [isinstance(data["run_id"], str), status.final, type(code) is int,
                      data["signal"] is None or type(data["signal"]) is int,
                      data["reason"] is None or isinstance(data["reason"], str),
                      isinstance(data["enforced"], dict)
                      and all(isinstance(v, str) for v in data["enforced"].values()),
                      data["peak_memory"] is None or type(data["peak_memory"]) is int,
                      data["environment"] is None or isinstance(data["environment"], dict),
                      data["fingerprint"] is None or isinstance(data["fingerprint"], str),
                      data["up_to_date"] is None or isinstance(data["up_to_date"], str),
                      data["host"] is None or isinstance(data["host"], str),
                      isinstance(data.get("tracked"), (dict, type(None)))]
        except (KeyError, ValueError, TypeError):
            return None
        if not all(checks):
            return None
        return cls(data["run_id"], status, code, data["signal"], data["reason"],
                   dict(data["enforced"]), data["peak_memory"], data["environment"],
                   data["fingerprint"], data["up_to_date"], data["host"], data.get("tracked"))


def write(path: Path, result: WorkerResult) -> None:
    from mlproject.runner.util.files import write_atomic

    write_atomic(path, json.dumps(result.to_json(), indent=1, sort_keys=True) + "\n")


def read(path: Path, run_id: str) -> WorkerResult | None:
    """The result at `path` for the run `run_id`; None where there is none, or it is not one."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_SIZE + 1)
        found = WorkerResult.from_json(json.loads(raw)) if len(raw) <= MAX_SIZE else None
    except (OSError, ValueError, RecursionError):
        return None
    return found if found is not None and found.run_id == run_id else None


def collect(submission: Submission, raw_log: bytes | None) -> WorkerResult | None:
    from mlproject.runner.worker import REQUEST_VAR
    from mlproject.runner.worker.request import RequestError, WorkerRequest

    run_dir = Path(submission.log).parent
    request = None
    if raw_log is not None:
        try:
            request = WorkerRequest.decode(submission.env[REQUEST_VAR])
        except (KeyError, RequestError):
            return None
    return collect_into(run_dir, submission.run_id, request, raw_log)


def collect_into(run_dir: Path, run_id: str, request: WorkerRequest | None,
                 raw_log: bytes | None) -> WorkerResult | None:
    """The worker's report of run `run_id`: the bundle at the end of `raw_log` unpacked as
    `request` says (the outputs into its project, the result into `run_dir`), or, with no log,
    the result the worker wrote into the shared run directory."""
    from mlproject.runner.worker import RESULT_FILE

    if raw_log is not None and request is not None:
        from mlproject.runner.worker import bundle

        payload = bundle.split(raw_log, request.run_id)[1]
        if payload is None:
            return None
        bundle.unpack(payload, request, run_dir)
    elif raw_log is not None:
        return None
    return read(run_dir / RESULT_FILE, run_id)


NO_REPORT = ("the engine says the step ended, but mlproject's worker reported nothing (it did "
             "not start, or its report was lost): see the log")


def merged(outcome: Outcome, report: WorkerResult | None) -> Outcome:
    """The worker knows how the step itself ended (its exit code, an oom of its own cgroup);
    the engine knows what it did to the worker (a time limit, a cancel, a node lost). Where the
    engine says the worker ended by itself, the worker's word is taken; else the engine's."""
    from mlproject.runner.util.exitcodes import STEP_FAILED

    if report is None:
        if outcome.status == Status.SUCCEEDED:
            return replace(outcome, status=Status.FAILED, exit_code=STEP_FAILED,
                           reason=NO_REPORT)
        return outcome
    engine = {**outcome.engine, "worker": {"host": report.host, "up_to_date": report.up_to_date}}
    completed = replace(outcome, enforced={**outcome.enforced, **report.enforced},
                        peak_memory=report.peak_memory, environment=report.environment,
                        fingerprint=report.fingerprint, engine=engine, tracked=report.tracked)
    if outcome.status in (Status.SUCCEEDED, Status.FAILED):
        reason = report.reason
        if report.up_to_date:
            reason = f"up to date (run {report.up_to_date}): not run again"
        return replace(completed, status=report.status, exit_code=report.exit_code,
                       signal=report.signal, reason=reason)
    return completed
