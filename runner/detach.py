"""`mlproject run --detach`: the plan is made and checked in the foreground (errors exit 2, as
for `run`), then a supervisor process of its own runs it, and the foreground prints the run ids
at once and exits.

The supervisor is a fork of the foreground made after the plan: it runs exactly the plan the
foreground made (nothing is resolved again) with the backends this process has registered. It
starts a session of its own (no terminal's Ctrl-C or hangup reaches it), reads /dev/null, and
writes its output to `.mlproject/detached/<invocation>.log`. First it writes a `queued` record
per step (so every id exists before the foreground prints it), tells the foreground their ids
over a pipe, then executes with those ids (execute.Options.run_ids). A step that does not run
ends its queued record saying why: up to date (succeeded, exit 0, naming the run that made its
outputs), or not run because a step it needs did not succeed (cancelled, 130). A supervisor
killed outright leaves queued and running records whose writer is dead: they read as crashed,
except a step an engine holds, which `mlproject runs` brings up to date from the engine.
"""
from __future__ import annotations

import json
import os
import select
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlproject.runner.state import records
from mlproject.runner.state.status import Status
from mlproject.runner.util.console import say
from mlproject.runner.util.exitcodes import INTERNAL as EXIT_INTERNAL
from mlproject.runner.util.exitcodes import INTERRUPTED as EXIT_INTERRUPTED
from mlproject.runner.util.exitcodes import STEP_FAILED as EXIT_STEP_FAILED
from mlproject.runner.util.exitcodes import USAGE as EXIT_USAGE

if TYPE_CHECKING:
    from mlproject.runner.execute import Options
    from mlproject.runner.plan import Plan
    from mlproject.runner.state.record import RunRecord

STARTUP = 60.0  # seconds the foreground waits for the supervisor to say the run ids


class DetachError(Exception):
    """The plan cannot be detached (nothing runs): the message says why (exit code 2)."""


def start(plan: Plan, options: Options) -> int:
    """Check the plan, fork its supervisor, print the run ids; the exit code of the foreground."""
    from mlproject.runner.execute import PreflightError

    try:
        _check(plan, options)
        invocation = os.urandom(8).hex()
        log = _open_log(plan.project, invocation)
    except (PreflightError, DetachError) as exc:
        sys.stderr.write(f"mlproject: error: cannot start:\n{exc}\n")
        return EXIT_USAGE
    read_end, write_end = os.pipe()
    _flush()
    pid = os.fork()
    if pid == 0:  # the supervisor: never returns into the foreground's code
        code = EXIT_INTERNAL
        try:
            os.close(read_end)
            code = _supervise(plan, options, invocation, log.fd, write_end)
        except BaseException:  # a bug: into its log, since nobody else sees it
            import traceback

            traceback.print_exc()
        finally:
            _flush()
            os._exit(code)
    os.close(write_end)
    os.close(log.fd)
    answer = _answer(read_end, pid)
    if "error" in answer:
        sys.stderr.write(f"mlproject: error: cannot start: {answer['error']}\n")
        return EXIT_USAGE
    ids: list[str] = answer["ids"]
    sys.stdout.write("".join(f"{run_id}\n" for run_id in ids))
    sys.stdout.flush()
    last = ids[-1]
    say(f"detached: {len(ids)} step{'s' if len(ids) > 1 else ''}, supervised by process {pid} "
        f"(its output: {log.path}); `mlproject logs {last} -f` follows, `mlproject wait {last}` "
        f"waits, `mlproject cancel {last}` stops")
    return 0


class _Log:
    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd


def _check(plan: Plan, options: Options) -> None:
    """What execute checks before any step starts, here, so that it is said in the foreground."""
    from mlproject.runner.execute import check

    check(plan, options)


def _open_log(root: str, invocation: str) -> _Log:
    try:
        where = records.ensure_state_dir(root) / "detached"
        where.mkdir(exist_ok=True)
        path = where / f"{invocation}.log"
        return _Log(path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                                  0o666))
    except OSError as exc:
        raise DetachError(f"the supervisor's log cannot be written in "
                          f"{records.state_dir(root) / 'detached'}: {exc.strerror or exc}") from None


def _flush() -> None:
    from mlproject.runner.util import console

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    console.drain_all(1.0)


def _answer(read_end: int, pid: int) -> dict[str, Any]:
    """What the supervisor says: {"ids": [...]} or {"error": why}."""
    data = b""
    deadline = time.monotonic() + STARTUP
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return {"error": f"the supervisor (process {pid}) said no run ids in "
                                 f"{STARTUP:g}s"}
            ready, _, _ = select.select([read_end], [], [], left)
            if not ready:
                continue
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(read_end)
    try:
        answer: dict[str, Any] = json.loads(data)
    except ValueError:
        return {"error": f"the supervisor (process {pid}) ended before it said the run ids "
                         "(its log in .mlproject/detached/ says why)"}
    return answer


def _detach_from_terminal(log_fd: int) -> None:
    """A session of its own, /dev/null for input, the log for output: nothing of the
    foreground's terminal or pipes is held (`ids=$(mlproject run --detach)` returns at once)."""
    from mlproject.runner.util import console

    os.setsid()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    # console's writers hold descriptors of their own onto the foreground's stdout and stderr
    for term in console._terminals.values():
        if term._out is not None and term._out != term.fd:
            try:
                os.close(term._out)
            except OSError:
                pass
    console._terminals.clear()


def _supervise(plan: Plan, options: Options, invocation: str, log_fd: int,
               write_end: int) -> int:
    from mlproject.runner.execute import PreflightError, execute

    _detach_from_terminal(log_fd)
    try:
        ids = _queue(plan, options, invocation)
    except OSError as exc:
        _tell(write_end, {"error": f"the runs cannot be recorded in "
                                   f"{records.runs_dir(plan.project)}: {exc.strerror or exc}"})
        return EXIT_USAGE
    _tell(write_end, {"ids": [ids[s.entry_point] for s in plan.steps]})
    say(f"supervisor {os.getpid()}: running {', '.join(s.entry_point for s in plan.steps)} on "
        f"the {options.backend} backend")
    why = None
    try:
        code = execute(plan, replace(options, run_ids=ids))
    except PreflightError as exc:
        code, why = EXIT_USAGE, f"cannot start: {' '.join(str(exc).split())}"
        say(why)
    except KeyboardInterrupt:
        code, why = EXIT_INTERRUPTED, "the supervisor was interrupted"
    settle(plan, ids, invocation, code, why)
    say(f"supervisor {os.getpid()}: done, exit code {code}")
    return code


def _tell(write_end: int, message: dict[str, Any]) -> None:
    data = json.dumps(message).encode()
    try:
        while data:
            data = data[os.write(write_end, data):]
    except OSError:  # the foreground is gone: the records say it all
        pass
    os.close(write_end)


def _queue(plan: Plan, options: Options, invocation: str) -> dict[str, str]:
    """A queued record per step, in order; entry point -> run id."""
    import shutil

    from mlproject.runner import recording

    ids: dict[str, str] = {}
    made: list[Path] = []
    try:
        for index, step in enumerate(plan.steps):
            run_id, run_dir = records.new_run_dir(plan.project)
            made.append(run_dir)
            ids[step.entry_point] = run_id
            records.write(run_dir, recording.initial(
                plan, step, run_id, invocation, options.backend, records.now(), options.settings,
                status=Status.QUEUED, reason=waiting(plan, index)))
    except OSError:
        for run_dir in made:  # no run: nothing to list as crashed
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return ids


def waiting(plan: Plan, index: int) -> str:
    """Why the step at `index` of the plan is queued, in words."""
    step = plan.steps[index]
    if index == 0:
        return "waiting for its supervisor to start it"
    if step.needs:
        return f"waiting for {', '.join(step.needs)}"
    return f"waiting for {plan.steps[index - 1].entry_point} (the steps run one at a time)"


_ENDED = {Status.FAILED: "failed", Status.CANCELLED: "was cancelled", Status.TIMEOUT: "timed out",
          Status.OOM: "ran out of memory", Status.INTERRUPTED: "was interrupted",
          Status.CRASHED: "crashed"}


def settle(plan: Plan, ids: dict[str, str], invocation: str, code: int,
           why: str | None = None) -> None:
    """End every record execute left queued, saying why its step did not run.

    Execute takes the steps in order: each is up to date (no record written), refused (a record
    of its own: pinned data changed), or run (its queued record rewritten); it stops at the
    first that does not succeed. So a step still queued before the last step execute reached
    was up to date, and one after it was not run."""
    root = plan.project
    base = records.runs_dir(root)
    order = [s.entry_point for s in plan.steps]
    found = {ep: records.load(base / run_id).record for ep, run_id in ids.items()}
    refused = _refusals(root, ids)
    reached = -1  # the index of the last step execute reached
    stop: tuple[str, Status] | None = None  # the step the pipeline stopped at, and its end
    for index, ep in enumerate(order):
        record = found.get(ep)
        if ep in refused:
            reached, stop = index, (ep, Status.FAILED)
        elif record is not None and record.status != Status.QUEUED:
            reached = index
            if record.status != Status.SUCCEEDED and record.status.final:
                stop = (ep, record.status)
    ran = next((r.invocation for r in found.values()
                if r is not None and r.status != Status.QUEUED), invocation)
    below = _needing(plan, stop[0]) if stop else set()
    for index, ep in enumerate(order):
        record = found.get(ep)
        if record is None or record.status != Status.QUEUED:
            continue
        if code == 0 or index < reached:
            ended = replace(record, status=Status.SUCCEEDED, exit_code=0,
                            reason=_up_to_date(root, plan.steps[index]))
        elif ep in refused:
            other = refused[ep]
            ended = replace(record, status=Status.FAILED, exit_code=EXIT_STEP_FAILED,
                            reason=f"failed before it started: {other.reason} (recorded as run "
                                   f"{other.id})")
        else:
            if stop is not None and ep in below:
                reason = f"not run: needs {stop[0]}, which {_ENDED.get(stop[1], stop[1].value)}"
            elif stop is not None:
                reason = (f"not run: the pipeline stopped at {stop[0]}, which "
                          f"{_ENDED.get(stop[1], stop[1].value)}")
            else:
                reason = f"not run: {why or f'the pipeline stopped (exit code {code})'}"
            ended = replace(record, status=Status.CANCELLED, exit_code=EXIT_INTERRUPTED,
                            reason=reason)
        ended = replace(ended, invocation=ran, ended_at=records.now().isoformat(), duration=0.0)
        try:
            records.write(base / record.id, ended)
        except OSError as exc:
            say(f"error: the record of run {record.id} cannot be completed "
                f"({exc.strerror or exc}); it will be listed as crashed")
            continue
        say(f"{ep}: {ended.status}: {ended.reason} (run {record.id})")


def _needing(plan: Plan, failed: str) -> set[str]:
    """The steps that need `failed`, directly or through others."""
    below = {failed}
    for step in plan.steps:  # in order: a step's needs come before it
        if below.intersection(step.needs):
            below.add(step.entry_point)
    return below - {failed}


def _refusals(root: str, ids: dict[str, str]) -> dict[str, RunRecord]:
    """Records this process wrote besides the queued ones: steps refused before they started
    (execute records those under a run id of their own)."""
    first = min(ids.values())
    given = set(ids.values())
    me = os.getpid(), records.process_start(os.getpid())
    out: dict[str, RunRecord] = {}
    try:  # only the runs made since (names sort by time): not the project's whole history
        later = sorted(p for p in records.runs_dir(root).iterdir()
                       if p.name > first and p.name not in given and p.is_dir())
    except OSError:
        return out
    for run_dir in later:
        record = records.load(run_dir).record
        if record is None:
            continue
        if (record.host.pid, record.host.pid_start) == me and record.status == Status.FAILED:
            out[record.entry_point] = record
    return out


def _up_to_date(root: str, step: Any) -> str:
    """The reason of a step execute found up to date, naming the run that made its outputs."""
    from mlproject.runner.gitops import lockfile
    from mlproject.runner.state import uptodate

    made = None
    try:
        lock = lockfile.read(root)
        entry = lock.entries.get(step.entry_point) if lock else None
        if entry is not None:
            made = uptodate.earlier_run(root, entry.fingerprint, step.outputs)
    except lockfile.LockError:
        pass
    by = f" (run {made} made its outputs)" if made else ""
    return f"up to date: not run again{by}; --force runs it anyway"
