"""Running a sweep: every point resolved and checked before anything runs (a value that does
not fit, a path that is not there: exit 2, nothing recorded), the steps the entry point needs
run once first, then the points, up to `jobs` at once, each a run recorded under the sweep's
id. A point whose fingerprint already succeeded is not run again: its earlier run stands for it
(so a sweep interrupted, or with failed points, resumes where it stopped when run again).

Points run in threads of this process (a point costs what its command costs, not another
mlproject: a process per point would add ~200 ms each). Signals reach the main thread only:
its handler marks the shared stopper, which every wait polls (a running point is stopped, as a
run's step is), and no new point starts. With `jobs` > 1 the points' output is not shown (each
run's log keeps it): one line per point says how it ended, and where its log is."""
from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from mlproject.runner import backends, execute, realize
from mlproject.runner.backends.base import Interrupted, SharedStopper, Stopper
from mlproject.runner.facts.received import received
from mlproject.runner.plan import Plan, Step
from mlproject.runner.state import index, records, uptodate
from mlproject.runner.state.status import Status
from mlproject.runner.sweeps import store
from mlproject.runner.util import console
from mlproject.runner.util.exitcodes import INTERRUPTED as EXIT_INTERRUPTED
from mlproject.runner.util.exitcodes import STEP_FAILED as EXIT_STEP_FAILED

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class Settings:
    jobs: int = 1
    max_failures: int | None = None
    force: bool = False
    # the points' output on the terminal, where one runs at a time (not with --json: stdout is
    # the table's)
    show_output: bool = True


@dataclass
class _Progress:
    total: int
    finished: int = 0
    failed: int = 0
    stopped_by_failures: bool = False


def fingerprints_done(root: str, entry_point: str) -> dict[str, str]:
    """fingerprint -> the latest run of `entry_point` that succeeded with it."""
    return {row["fingerprint"]: row["id"] for row in index.rows(root)
            if row["entry_point"] == entry_point and row["status"] == Status.SUCCEEDED.value
            and isinstance(row.get("fingerprint"), str)}


def run(plans: Sequence[Plan], sweep: Mapping[str, Any], options: execute.Options,
        settings: Settings) -> tuple[int, dict[str, Any]]:
    """Run the points' plans (one per point, in the sweep's order, each ending with the entry
    point swept); the exit code and the sweep's file as written at the end."""
    first = plans[0]
    root = first.project
    target = first.steps[-1]
    if settings.jobs > 1 and (target.outputs or target.metrics):
        written = ", ".join([*target.outputs, *([target.metrics] if target.metrics else [])])
        raise execute.PreflightError(
            f"entry point {target.entry_point!r} writes {written}: its points share this work "
            f"tree, so {settings.jobs} at once would write over each other's files; run them "
            "one at a time (--jobs 1), or have each point write inside its run directory "
            "($MLPROJECT_RUN_DIR) and log its metrics with `from mlproject import log`")
    execute.check(first, options)
    for plan in plans[1:]:
        _preflight(plan, options)
    upstream = first.steps[:-1]
    if upstream:  # what the swept entry point needs: run once, as `mlproject run` would
        code = execute.execute(replace(first, steps=upstream), options)
        if code:
            console.say(f"sweep not started: {upstream[-1].entry_point} did not succeed")
            return code, {}
    done: dict[str, Step] = {}
    for step in upstream:
        done[step.entry_point] = received(root, step, done, save=True,
                                          hash_outputs=uptodate.hash_outputs)
    steps = [received(root, plan.steps[-1], done, save=True, hash_outputs=uptodate.hash_outputs)
             for plan in plans]
    succeeded = {} if settings.force else fingerprints_done(root, steps[0].entry_point)
    host = records.host_info()
    data: dict[str, Any] = {
        **sweep, "status": "running", "started_at": records.now().isoformat(), "ended_at": None,
        "backend": options.backend, "jobs": settings.jobs,
        "host": [host.hostname, host.pid, host.pid_start],  # whether its mlproject still lives
        "points": [{"index": i, "parameters": dict(step.parameters),
                    "reused": succeeded.get(step.fingerprint)} for i, step in enumerate(steps)],
    }
    try:
        store.write(root, data)
    except OSError as exc:
        raise execute.PreflightError(f"the sweep cannot be recorded in "
                                     f"{store.sweeps_dir(root)}: {exc.strerror or exc}") from None
    todo = [i for i, p in enumerate(data["points"]) if p["reused"] is None]
    reused = len(steps) - len(todo)
    if reused:
        console.say(f"sweep {data['id']}: {reused} of {len(steps)} points succeeded before "
                    "with the same fingerprint: not run again (--force runs them)")
    console.say(f"sweep {data['id']}: {len(todo)} point{'s' if len(todo) != 1 else ''} to run, "
                f"{settings.jobs} at once")
    stopper = SharedStopper()
    previous = {s: signal.signal(s, stopper.request) for s in _SIGNALS}
    progress = _Progress(len(todo))
    try:
        if todo and not backends.get(options.backend, options.settings
                                     ).capabilities.builds_environments:
            _warm(steps[todo[0]], stopper)
        _run_points(plans, steps, done, todo, data, options, settings, stopper, progress)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    data["status"] = ("interrupted" if stopper.signal is not None else
                      f"stopped after {progress.failed} failures" if progress.stopped_by_failures
                      else "finished")
    data["ended_at"] = records.now().isoformat()
    try:
        store.write(root, data)
    except OSError as exc:
        console.say(f"warning: the sweep's end is not recorded ({exc.strerror or exc})")
    if stopper.signal is not None:
        return EXIT_INTERRUPTED, data
    return (EXIT_STEP_FAILED if progress.failed or progress.stopped_by_failures else 0), data


def _preflight(plan: Plan, options: execute.Options) -> None:
    problems = execute.preflight(replace(plan, steps=plan.steps[-1:]), options.backend,
                                 options.settings, options.allow_dirty)
    if problems:
        raise execute.PreflightError("\n".join(problems))


def _warm(step: Step, stopper: Stopper) -> None:
    """The points' environment built (or found) once, before points run at once: each point
    then finds it built."""
    try:
        with stopper.interruptible():
            realized = realize.environment(step)
        realized.hold.release()
    except Interrupted:
        pass  # the points see the signal and do not start
    except Exception:
        pass


def _run_points(plans: Sequence[Plan], steps: Sequence[Step], done: Mapping[str, Step],
                todo: list[int], data: dict[str, Any], options: execute.Options,
                settings: Settings, stopper: Stopper, progress: _Progress) -> None:
    backend = backends.get(options.backend, options.settings)
    invocation = data["id"]
    lock = threading.Lock()
    pending = list(reversed(todo))
    shown_quiet = settings.jobs > 1 or not settings.show_output
    width = len(str(len(steps) - 1))

    def take() -> int | None:
        with lock:
            if stopper.signal is not None or progress.stopped_by_failures or not pending:
                return None
            return pending.pop()

    def one(i: int) -> None:
        step = steps[i]
        plan = replace(plans[i], steps=(*done.values(), step))
        run_id, _ = records.new_run_dir(plan.project)
        point_options = replace(options, run_ids={step.entry_point: run_id},
                                sweep={"id": data["id"], "name": data.get("name"), "index": i})
        started = time.monotonic()
        try:
            outcome = execute.run_point(plan, step, backend, stopper, invocation, point_options)
        except execute.PreflightError as exc:  # its record cannot be written: stop the sweep
            console.announce(f"point {i}: not run: {exc}")
            with lock:
                progress.failed += 1
                progress.stopped_by_failures = True
            return
        except Exception as exc:  # a point's internal error fails it, never the other points
            console.announce(f"point {i}: not run to its end (an internal error of mlproject): "
                             f"{type(exc).__name__}: {exc} (run {run_id})")
            with lock:
                progress.finished += 1
                progress.failed += 1
            return
        with lock:
            progress.finished += 1
            if outcome.status != Status.SUCCEEDED and outcome.status != Status.INTERRUPTED:
                progress.failed += 1
                if (settings.max_failures is not None
                        and progress.failed >= settings.max_failures):
                    progress.stopped_by_failures = True
            count = f"[{progress.finished}/{progress.total}]"
        if shown_quiet or outcome.status != Status.SUCCEEDED:
            values = " ".join(f"{k}={v}" for k, v in step.parameters.items()
                              if k in data["points"][i]["parameters"])
            detail = (f": {outcome.reason}" if outcome.reason else
                      f", exit code {outcome.exit_code}" if outcome.exit_code else "")
            log = ("" if outcome.status == Status.SUCCEEDED else
                   f"; log: {records.runs_dir(plan.project) / run_id / 'log.txt'}")
            console.announce(f"{count} point {i:>{width}} ({values[:120]}): {outcome.status} in "
                             f"{time.monotonic() - started:.2f}s{detail} (run {run_id}){log}")

    def worker() -> None:
        with console.quiet() if shown_quiet else contextlib.nullcontext():
            while True:
                i = take()
                if i is None:
                    return
                one(i)

    if len(todo) > 1 and hasattr(backend, "submit_array"):
        _run_array(plans, steps, done, todo, data, options, settings, stopper, progress,
                   backend)
    elif settings.jobs == 1:
        worker()  # in the main thread: a signal is handled as in `mlproject run`
    else:
        threads = [threading.Thread(target=worker, name=f"point-{n}", daemon=True)
                   for n in range(min(settings.jobs, len(todo)))]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)  # not a plain join: the main thread must take its signals
    if progress.stopped_by_failures and pending and not hasattr(backend, "submit_array"):
        console.say(f"sweep stopped: {progress.failed} points failed (--max-failures "
                    f"{settings.max_failures}); {len(pending)} not started")


WAITERS = 16  # threads that wait for a job array's points (each asks the engine now and then)


def _run_array(plans: Sequence[Plan], steps: Sequence[Step], done: Mapping[str, Step],
               todo: list[int], data: dict[str, Any], options: execute.Options,
               settings: Settings, stopper: Stopper, progress: _Progress,
               backend: Any) -> None:
    """The points as one request to the engine (Slurm: one job array, `--jobs` of its tasks
    running at once), then waited for, each recorded as it ends. Past --max-failures, or on a
    signal, the points not ended are cancelled, and recorded so."""
    from mlproject.runner import recording
    from mlproject.runner.backends.base import Outcome, SubmitError

    invocation = data["id"]
    prepared: list[tuple[int, Plan, execute.Prepared]] = []
    with console.quiet():
        for i in todo:
            step = steps[i]
            plan = replace(plans[i], steps=(*done.values(), step))
            point_options = replace(options, sweep={"id": data["id"], "name": data.get("name"),
                                                    "index": i})
            found = execute.prepare_point(plan, step, backend, stopper, invocation,
                                          point_options)
            if isinstance(found, Outcome):
                progress.finished += 1
                progress.failed += found.status != Status.SUCCEEDED
                continue
            prepared.append((i, plan, found))
    if not prepared:
        return
    try:
        handles = backend.submit_array([p.submission for _, _, p in prepared], settings.jobs)
    except SubmitError as exc:
        for _, plan, p in prepared:
            p.realized.hold.release()
            recording.finish(plan, p.step, p.record, p.run_dir, p.started,
                             Outcome(Status.FAILED, exc.exit_code, reason=str(exc)))
        progress.failed += len(prepared)
        console.say(f"the points were not submitted: {exc}")
        return
    queue = [(i, plan, execute.submitted_step(p, h))
             for (i, plan, p), h in zip(prepared, handles, strict=True)]
    console.say(f"sweep {data['id']}: {len(queue)} points submitted as one "
                f"{backend.name} job array (engine id {handles[0].data.get('array') or '?'}), "
                f"{settings.jobs} at once")
    lock = threading.Lock()
    ended: set[int] = set()
    cancelled = [False]
    pending = list(reversed(queue))

    def stop_rest() -> None:
        """Cancel every point not ended yet (once)."""
        if cancelled[0]:
            return
        cancelled[0] = True
        for i, _, sub in queue:
            if i not in ended:
                backend.cancel(sub.handle)

    def waiter() -> None:
        with console.quiet():
            while True:
                with lock:
                    if not pending:
                        return
                    i, plan, sub = pending.pop()
                outcome = execute.await_point(plan, sub, backend, stopper)
                with lock:
                    ended.add(i)
                    progress.finished += 1
                    if outcome.status not in (Status.SUCCEEDED, Status.INTERRUPTED,
                                              Status.CANCELLED):
                        progress.failed += 1
                        if (settings.max_failures is not None
                                and progress.failed >= settings.max_failures):
                            progress.stopped_by_failures = True
                    count = f"[{progress.finished}/{progress.total}]"
                    stop = progress.stopped_by_failures
                detail = (f": {outcome.reason}" if outcome.reason else
                          f", exit code {outcome.exit_code}" if outcome.exit_code else "")
                console.announce(f"{count} point {i}: {outcome.status}{detail} "
                                 f"(run {sub.record.id})")
                if stop:
                    with lock:
                        stop_rest()

    threads = [threading.Thread(target=waiter, name=f"waiter-{n}", daemon=True)
               for n in range(min(WAITERS, len(queue)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.2)
            if stopper.signal is not None:
                with lock:
                    stop_rest()
