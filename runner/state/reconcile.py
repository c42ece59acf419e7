"""A record brought up to date from the engine that holds its step.

The mlproject that submits a step (`run`, or the supervisor of `run --detach`) records its end.
When that process is gone (killed, the machine restarted) while an engine still holds the step
(a docker container, a Slurm job: a handle of a backend whose steps outlive mlproject), the
record would say `running` for ever. `runs`, `runs show`, `logs`, `cancel` and `wait` ask the
engine instead (`refresh`): a step still going is shown with the engine's status; an ended one
is recorded as the supervisor would have: the engine's whole log into log.txt, what the engine
says of it (`engine_facts`, where the backend offers it), its outputs, metrics and lock entry
(recording.finish), then what the engine keeps of it removed (`cleanup`, where offered). Its
`ended_at` is when the engine says the step ended (docker's FinishedAt), else when the end was
read, and its duration runs to then.

One finalizer at a time: an exclusive lock (flock) on `finalize.lock` in the run directory. A
lock of a process that died is released by the kernel, so no stale lock is ever taken over.
An engine that cannot be asked (unreachable, the backend's settings no longer valid) leaves the
record as it was written, and says why once.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlproject.runner.state import records
from mlproject.runner.state.status import Status
from mlproject.runner.util import console

if TYPE_CHECKING:
    from mlproject.runner.backends.base import Backend, Handle, Outcome, StepState
    from mlproject.runner.plan import Plan, Step
    from mlproject.runner.state.record import RunRecord

LOCK = "finalize.lock"


def writer_alive(record: RunRecord) -> bool | None:
    """Whether the process that wrote the record still runs; None: it ran on another machine,
    which this one cannot tell."""
    if record.host.hostname != os.uname().nodename:
        return None
    return records.process_start(record.host.pid) == record.host.pid_start


class Engines:
    """The backends that records name, each made once, and what could not be asked, said once."""

    def __init__(self, say: Callable[[str], None] = console.say) -> None:
        self._say = say
        self._made: dict[str, Backend | None] = {}
        self._said: set[str] = set()

    def note(self, key: str, message: str) -> None:
        if key not in self._said:
            self._said.add(key)
            self._say(message)

    def backend(self, record: RunRecord) -> Backend | None:
        from mlproject.runner import backends

        key = f"{record.backend} {json.dumps(dict(record.settings), sort_keys=True, default=str)}"
        if key not in self._made:
            try:
                self._made[key] = backends.get(record.backend, dict(record.settings) or None)
            except Exception as exc:  # any backend's: a plugin, settings now invalid, no engine
                self._made[key] = None
                self.note(key, f"warning: the {record.backend} backend cannot be made to ask "
                               f"about run {record.id} ({_why(exc)}); runs it holds are shown "
                               "as recorded")
        return self._made[key]

    def ask(self, record: RunRecord) -> tuple[Backend, Handle] | None:
        """The backend and handle of a record's step; None (said once) where there are none."""
        from mlproject.runner.backends.base import Handle, HandleError

        backend = self.backend(record)
        if backend is None:
            return None
        try:
            return backend, Handle.from_json(record.handle)
        except HandleError as exc:
            self.note(f"handle {record.id}", f"warning: run {record.id}: its record's engine "
                                             f"handle cannot be read ({exc}); shown as recorded")
            return None

    def status(self, record: RunRecord, backend: Backend, handle: Handle) -> StepState | None:
        try:
            return backend.status(handle)
        except Exception as exc:
            self.note(f"status {record.backend}", f"warning: the {record.backend} engine cannot "
                      f"be asked about run {record.id} ({_why(exc)}); shown as recorded")
            return None


def _why(exc: Exception) -> str:
    said = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc  # KeyError quotes it
    text = " ".join(str(said).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def held(record: RunRecord) -> bool:
    """Whether the record's step is the engine's to answer for: not ended, submitted (a handle),
    and its writer gone."""
    return (not record.status.final and record.handle is not None
            and writer_alive(record) is False)


def refresh(root: str, loaded: records.Loaded, engines: Engines | None = None) -> records.Loaded:
    """The run as it stands: unchanged unless the engine holds it (`held`); then the engine's
    status, and an ended step recorded."""
    record = loaded.record
    engines = engines or Engines()
    if record is not None and _orphaned(record):
        # on the engine after all (its handle now recorded), or never submitted: crashed
        # (where the engine cannot be asked, it is shown as recorded)
        adopted, known = _adopted(root, record, engines)
        record = adopted or (replace(record, status=Status.CRASHED) if known else record)
        loaded = records.Loaded(loaded.id, record)
    if record is None or not held(record):
        return loaded
    asked = engines.ask(record)
    if asked is None:
        return loaded
    backend, handle = asked
    state = engines.status(record, backend, handle)
    if state is None:
        return loaded
    if not state.status.final:
        if state.status == record.status:
            return loaded
        return records.Loaded(loaded.id, replace(record, status=state.status,
                                                 reason=state.reason or record.reason))
    run_dir = records.runs_dir(root) / loaded.id
    with _finalizer(run_dir) as mine:
        if not mine:  # another process records it right now
            return loaded
        again = records.load(run_dir)
        if again.record is None or again.record.status.final or again.record.handle is None:
            return again
        _record_end(root, run_dir, again.record, backend, handle, state, engines)
    return records.load(run_dir)


def _orphaned(record: RunRecord) -> bool:
    """A step that may have reached an engine without its record saying so: not ended, no
    handle, its writer gone, on a backend other than local (whose steps die with it)."""
    return (not record.status.final and record.handle is None and record.backend != "local"
            and writer_alive(record) is False)


def _adopted(root: str, record: RunRecord, engines: Engines) -> tuple[RunRecord | None, bool]:
    """The record given the handle of its step, where the engine holds it (`find`); and
    whether the engine could be asked at all."""
    from mlproject.runner.backends import base

    backend = engines.backend(record)
    if backend is None:
        return None, False
    run_dir = records.runs_dir(root) / record.id
    try:
        handle = base.find(backend, record.id, str(run_dir))
    except Exception as exc:
        engines.note(f"find {record.id}", f"warning: the {record.backend} engine cannot be "
                     f"asked about run {record.id} ({_why(exc)}); shown as recorded")
        return None, False
    if handle is None:
        return None, True
    with _finalizer(run_dir) as mine:
        if not mine:
            return None, False
        again = records.load(run_dir).record
        if again is None or again.status.final or again.handle is not None:
            return again, True
        adopted = replace(again, handle=handle.to_json())
        try:
            records.write(run_dir, adopted)
        except OSError:
            pass  # shown with its handle now; asked again next time
        return adopted, True


def refresh_all(root: str, found: list[records.Loaded],
                engines: Engines | None = None) -> list[records.Loaded]:
    engines = engines or Engines()
    return [refresh(root, loaded, engines) for loaded in found]


@contextmanager
def _finalizer(run_dir: Path) -> Iterator[bool]:
    """Whether this process may record the run's end (the lock is held until the block ends)."""
    import fcntl

    try:
        fd = os.open(run_dir / LOCK, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                     0o666)
    except OSError:  # a read-only project: nothing can be recorded here
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass
        yield True
    finally:
        os.close(fd)  # releases the lock


def _record_end(root: str, run_dir: Path, record: RunRecord, backend: Backend, handle: Handle,
                state: StepState, engines: Engines) -> None:
    from mlproject.runner import recording
    from mlproject.runner.backends import base, wait
    from mlproject.runner.backends.base import Outcome

    if not backend.capabilities.writes_log:
        _copy_log(run_dir, record, backend, handle, engines)
    outcome = wait.outcome_of(state)
    if records.cancel_requested(run_dir) and outcome.status != Status.SUCCEEDED:
        outcome = Outcome(Status.CANCELLED, wait.EXIT_CANCELLED, state.signal, wait.CANCELLED)
    try:
        outcome = replace(outcome, engine=dict(base.engine_facts(backend, handle)))
    except Exception as exc:
        engines.note(f"facts {record.id}", f"warning: run {record.id}: what the "
                     f"{record.backend} engine says of the step is not recorded ({_why(exc)})")
    outcome = _with_worker_report(run_dir, record, backend, handle, outcome, engines)
    step = _step_of(record)
    ended = _engine_end(record, outcome.engine)
    elapsed = _elapsed(record, ended)
    if step is None:  # a record whose plan cannot be read back: the end alone
        try:
            records.write(run_dir, replace(
                record, status=outcome.status, exit_code=outcome.exit_code,
                signal=outcome.signal, reason=outcome.reason,
                ended_at=(ended or records.now()).isoformat(), duration=round(elapsed, 3)))
        except OSError as exc:
            console.say(f"error: the record of run {record.id} cannot be completed "
                        f"({exc.strerror or exc})")
            return
    else:
        plan, planned = step
        recording.finish(plan, planned, record, run_dir, time.monotonic() - elapsed, outcome,
                         ended)
    try:
        base.cleanup(backend, handle)
    except Exception as exc:
        engines.note(f"cleanup {record.id}", f"warning: run {record.id}: the {record.backend} "
                     f"engine's copy of the step is not removed ({_why(exc)})")


def _with_worker_report(run_dir: Path, record: RunRecord, backend: Backend, handle: Handle,
                        outcome: Outcome, engines: Engines) -> Outcome:
    """For a backend whose steps run mlproject's worker: its report taken, and the step's
    outputs unpacked from the end of the engine's log where the run directory is not shared,
    as the supervisor's `wait` would have (else a step the engine ran to success would be
    recorded without its outputs, or as a failure without a report)."""
    from mlproject.runner import worker
    from mlproject.runner.backends import base

    try:
        runs_worker, raw = base.worker_log(backend, handle)
    except Exception as exc:
        engines.note(f"worker {record.id}", f"warning: run {record.id}: the engine's log, with "
                     f"the worker's report, cannot be read ({_why(exc)})")
        runs_worker, raw = True, b""
    if not runs_worker:
        return outcome
    try:
        report = worker.adopted(run_dir, record.id, dict(record.plan), record.entry_point, raw)
    except (ValueError, OSError) as exc:  # a bundle that is not this step's: said, not used
        engines.note(f"worker {record.id}", f"warning: run {record.id}: the worker's report "
                     f"is not used ({_why(exc)})")
        report = None
    return worker.merged(outcome, report)


def _copy_log(run_dir: Path, record: RunRecord, backend: Backend, handle: Handle,
              engines: Engines) -> None:
    """The engine's whole log into the run's log.txt, atomically; kept where the engine has
    less of it than log.txt (the supervisor copied it before the engine dropped some)."""
    from mlproject.runner.util.files import write_atomic

    try:
        data = b"".join(backend.logs(handle, 0))
    except Exception as exc:
        engines.note(f"logs {record.id}", f"warning: run {record.id}: the engine's log cannot "
                     f"be read ({_why(exc)}); log.txt keeps what was copied before")
        return
    path = run_dir / "log.txt"
    try:
        if path.exists() and path.stat().st_size > len(data):
            return
        write_atomic(path, data)
    except OSError as exc:
        engines.note(f"logs {record.id}", f"warning: run {record.id}: log.txt cannot be "
                     f"written ({exc.strerror or exc})")


def _step_of(record: RunRecord) -> tuple[Plan, Step] | None:
    from mlproject.runner.plan import Plan as Planned
    from mlproject.runner.planfile import PlanFileError

    try:
        plan = Planned.from_json(dict(record.plan), f"run {record.id}'s plan")
    except PlanFileError:
        return None
    for step in plan.steps:
        if step.entry_point == record.entry_point:
            return plan, step
    return None


def _engine_end(record: RunRecord, facts: Mapping[str, Any]) -> dt.datetime | None:
    """When the engine says the step ended (docker's `finished_at`), where it says so and that
    is after the record's start and not in the future; else None (the end is taken as now)."""
    try:
        ended = dt.datetime.fromisoformat(str(facts.get("finished_at")))
        started = dt.datetime.fromisoformat(record.started_at)
    except ValueError:
        return None
    if ended.tzinfo is None or not started <= ended <= records.now():
        return None  # docker's zero time (never started), or a clock that disagrees
    return ended


def _elapsed(record: RunRecord, ended: dt.datetime | None = None) -> float:
    """Seconds from the record's start to its end (`ended`, else now: its end was read now)."""
    try:
        started = dt.datetime.fromisoformat(record.started_at)
    except ValueError:
        return 0.0
    return max(0.0, ((ended or records.now()) - started).total_seconds())
