"""The generic wait of an engine backend: poll `status`, show the logs as they come, enforce the
timeout the engine does not, cancel on Ctrl-C or SIGTERM, and turn the end into an Outcome.

The local backend keeps a wait of its own (it reads its guard's pipes directly); every engine
that only answers questions (docker, Slurm, Kubernetes, Ray) waits through this one.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from mlproject.runner.backends.base import Handle, Outcome, StepState, Stopper, Submission
from mlproject.runner.state import records
from mlproject.runner.state.status import Status
from mlproject.runner.util import console
from mlproject.runner.util.exitcodes import INTERRUPTED as EXIT_INTERRUPTED
from mlproject.runner.util.exitcodes import STEP_FAILED as EXIT_FAILED
from mlproject.runner.util.exitcodes import TIMEOUT as EXIT_TIMEOUT

if TYPE_CHECKING:
    from mlproject.runner.backends.base import Backend

GRACE = 10.0  # seconds after a cancel before it is forced (the engine's own grace comes first)
EXIT_OOM = 137  # 128 + SIGKILL, as a shell and every engine report a memory kill
EXIT_CANCELLED = EXIT_INTERRUPTED  # stopped from outside before it ended
CANCELLED = "cancelled (mlproject cancel)"


def outcome_of(state: StepState) -> Outcome:
    """The Outcome of a step that the engine says has ended."""
    code = state.exit_code
    if state.status == Status.SUCCEEDED:
        return Outcome(Status.SUCCEEDED, 0)
    if state.status == Status.TIMEOUT:
        return Outcome(Status.TIMEOUT, EXIT_TIMEOUT, state.signal,
                       state.reason or "the step ran past resources.timeout")
    if state.status == Status.OOM:
        return Outcome(Status.OOM, EXIT_OOM, state.signal, state.reason or "killed: out of memory")
    if state.status in (Status.CANCELLED, Status.INTERRUPTED):
        return Outcome(state.status, EXIT_CANCELLED, state.signal, state.reason)
    if state.status == Status.FAILED:
        return Outcome(Status.FAILED, code if code else EXIT_FAILED, state.signal, state.reason)
    # the engine lost it (CRASHED), or a backend answered a status that is not an end
    return Outcome(Status.FAILED, code if code else EXIT_FAILED, state.signal,
                   state.reason or f"the engine reported {state.status}")


def poll(backend: Backend, submission: Submission, handle: Handle, stopper: Stopper) -> Outcome:
    """Until the step ends, asking `status` every `poll_interval` seconds."""
    out = console.terminal(1)
    interval = backend.capabilities.poll_interval
    shown = 0  # bytes of the log already shown
    why: str | None = None  # what was cancelled for: the signal's name, or the timeout
    cancelled_at: float | None = None
    forced = False
    said: str | None = None
    running_since: float | None = None
    queued_since: float | None = None
    # what the record says of the step now (execute wrote it)
    noted: tuple[Status, str | None] = (Status.RUNNING, None)
    gave_up: str | None = None  # why --queue-timeout cancelled it
    keep = None if backend.capabilities.writes_log else _open_log(submission.log)
    run_dir = Path(submission.log).parent  # where `mlproject cancel` leaves its request
    try:
        while True:
            state = backend.status(handle)
            for chunk in backend.logs(handle, since=shown):
                shown += len(chunk)
                out.write(chunk)
                if keep is not None:
                    try:
                        keep.write(chunk)
                    except OSError as exc:  # a full disk: the engine still has the log
                        console.say(f"warning: the step's output is no longer kept in "
                                    f"{submission.log}: {exc.strerror or exc}")
                        keep.close()
                        keep = None
            if state.status.final:
                break
            now = time.monotonic()
            if state.status == Status.QUEUED and state.reason and state.reason != said:
                console.say(f"{submission.entry_point}: queued: {state.reason}")
                said = state.reason
            if (state.status, state.reason) != noted:  # so that `runs` and `logs -f` say why
                noted = _note(run_dir, state)
            if state.status == Status.RUNNING and running_since is None:
                running_since = now
            if state.status == Status.QUEUED and queued_since is None:
                queued_since = now
            if why is None and stopper.signal is not None:
                why = f"interrupted by {stopper.name}"
            elif why is None and records.cancel_requested(run_dir):
                why = CANCELLED
                console.say(f"{submission.entry_point}: cancelled (mlproject cancel): stopping "
                            "the step")
            elif why is None and submission.timeout is not None and running_since is not None \
                    and now - running_since >= submission.timeout:
                why = "timeout"
                console.say(f"{submission.entry_point}: timeout after {submission.timeout:g}s: "
                            "stopping the step")
            elif why is None and submission.queue_timeout is not None and queued_since is not None \
                    and state.status == Status.QUEUED and now - queued_since >= submission.queue_timeout:
                why = "queue timeout"
                gave_up = (f"still queued after {submission.queue_timeout:g}s (--queue-timeout): "
                           f"{state.reason or 'the engine gave no reason'}")
                console.say(f"{submission.entry_point}: {gave_up}: cancelling it")
            if why is not None and cancelled_at is None:
                backend.cancel(handle)
                cancelled_at = now
            elif cancelled_at is not None and not forced and (
                    now - cancelled_at >= GRACE or stopper.count > 1):
                backend.cancel(handle, force=True)
                forced = True
            _pause(interval, stopper)
    finally:
        if keep is not None:
            keep.close()
    out.drain(1.0)
    if why == "timeout":
        return Outcome(Status.TIMEOUT, EXIT_TIMEOUT, state.signal,
                       "the step ran past resources.timeout")
    if why == CANCELLED:
        return Outcome(Status.CANCELLED, EXIT_CANCELLED, state.signal, CANCELLED)
    if gave_up is not None:
        return Outcome(Status.CANCELLED, EXIT_CANCELLED, state.signal, gave_up)
    if why is not None:
        return Outcome(Status.INTERRUPTED, EXIT_INTERRUPTED, state.signal, why)
    return outcome_of(state)


def _note(run_dir: Path, state: StepState) -> tuple[Status, str | None]:
    """The record brought to what the engine says of a step not ended yet (queued, and why;
    running), so that `runs` and `logs -f` in another process say it without asking the engine.
    The waiting mlproject is the record's writer: nobody else writes it meanwhile."""
    from dataclasses import replace

    reason = state.reason if state.status == Status.QUEUED else None
    loaded = records.load(run_dir)
    record = loaded.record
    if record is not None and not record.status.final and (
            record.status, record.reason) != (state.status, reason):
        try:
            records.write(run_dir, replace(record, status=state.status, reason=reason))
        except OSError:
            pass  # only news: the end is what must be written, and finish says if it cannot be
    return state.status, state.reason


def _open_log(path: str) -> BinaryIO | None:
    """The run's copy of an engine's log; None where it cannot be kept (said once)."""
    try:
        return open(path, "ab", buffering=0)  # closed by poll
    except OSError as exc:
        console.say(f"warning: the step's output is not kept in {path}: {exc.strerror or exc}")
        return None


def _pause(seconds: float, stopper: Stopper) -> None:
    """Sleep, but wake at once for a new signal."""
    seen = stopper.count
    end = time.monotonic() + seconds
    while stopper.count == seen:
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.05))
