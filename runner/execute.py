"""The plan meets the world: skip what is up to date, run each step on a backend, record it."""
from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from mlproject.runner import backends, realize, recording
from mlproject.runner.backends.base import (
    Backend,
    Interrupted,
    Outcome,
    RunContext,
    Stopper,
    SubmitError,
)
from mlproject.runner.envs.base import EnvError
from mlproject.runner.envs.kinds import kind
from mlproject.runner.facts.received import received
from mlproject.runner.plan import Plan, Step, inside
from mlproject.runner.state import records, uptodate
from mlproject.runner.state.status import Status
from mlproject.runner.util.console import say
from mlproject.runner.util.exitcodes import INTERRUPTED as EXIT_INTERRUPTED

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class PreflightError(Exception):
    """A step that cannot start at all (exit code 2: nothing ran, nothing was recorded)."""


@dataclass(frozen=True)
class Options:
    backend: str = "local"
    force: bool = False
    pull: bool = False  # materialize pinned data that does not match before running
    settings: Mapping[str, Any] = field(default_factory=dict)  # the backend's (settings.load)
    # entry point -> the run id its record was given before the plan started (a detached
    # supervisor writes a queued record per step first, and says their ids at once)
    run_ids: Mapping[str, str] | None = None


def preflight(plan: Plan, backend_name: str,
              settings: Mapping[str, Any] | None = None) -> list[str]:
    """Everything that would stop a step from starting, found before any step starts."""
    backend = backends.get(backend_name, settings)
    problems = []
    written = [os.path.normpath(os.path.join(plan.project, out)) for s in plan.steps
               for out in (*s.outputs, *([s.metrics] if s.metrics else []))]
    for step in plan.steps:
        env = step.environment
        if env.problem:
            problems.append(f"entry point {step.entry_point!r}: environment {env.name!r}: "
                            f"{env.problem}")
        elif kind(env.kind).needs_containers and not backend.capabilities.runs_containers:
            problems.append(
                f"entry point {step.entry_point!r} runs in container image {env.detail} "
                f"(environment {env.name!r}): the {backend_name} backend runs no containers; "
                "run with --env local to use the current interpreter")
        for name, path in step.paths.items():
            # what a step of the plan writes need not exist before the run
            if not os.path.exists(path) and not inside(path, written):
                problems.append(f"parameter {name} (path): {path} does not exist")
        problems.extend(backend.preflight(step, plan.project))
    return problems


def execute(plan: Plan, options: Options) -> int:
    """Run the plan's steps in order; the exit code of the first that does not succeed, else 0.
    The plan is all it needs: environments are rebuilt from its data, pins are its steps'."""
    problems = (preflight(plan, options.backend, options.settings)
                or realize.check_data(plan, options.pull))
    if problems:
        raise PreflightError("\n".join(problems))
    from mlproject.runner.gitops import lockfile

    try:  # a lock that is not one we read is refused before anything runs: never overwritten
        lockfile.read(plan.project)
    except lockfile.LockError as exc:
        raise PreflightError(str(exc)) from None
    backend = backends.get(options.backend, options.settings)
    stopper = Stopper()
    previous = {s: signal.signal(s, stopper.request) for s in _SIGNALS}
    invocation = os.urandom(8).hex()
    try:
        done: dict[str, Step] = {}
        verified = True  # the data checked above is as pinned until a step runs
        for planned in plan.steps:
            if stopper.signal is not None:
                return EXIT_INTERRUPTED
            # The fingerprint of what this step receives, read right now: the outputs its
            # upstream steps actually left, the content its path parameters name.
            step = received(plan.project, planned, done, save=True,
                           hash_outputs=uptodate.hash_outputs)
            done[step.entry_point] = step
            current = replace(plan, steps=tuple(done.get(s.entry_point, s) for s in plan.steps))
            if step.outputs and not options.force:
                found = uptodate.earlier_run(plan.project, step.fingerprint, step.outputs)
                if found:
                    say(f"{step.entry_point}: up to date (run {found}); --force runs it anyway")
                    recording.relock(plan.project, step, found)
                    continue
            problem = None if verified else realize.data_changed(plan, step)
            if problem:
                return recording.refuse(current, step, invocation, backend.name, problem)
            outcome = _run_step(current, step, backend, stopper, invocation, options)
            verified = False
            if outcome.status != Status.SUCCEEDED:
                _not_run(plan, step)
                return outcome.exit_code
        return 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _not_run(plan: Plan, failed: Step) -> None:
    """Say which steps the pipeline leaves out, and which of them needed the failed one."""
    rest = [s for s in plan.steps[[s.entry_point for s in plan.steps].index(failed.entry_point)
                                  + 1:]]
    if not rest:
        return
    below = {failed.entry_point}
    for s in rest:  # in order: a step's needs come before it
        if below.intersection(s.needs):
            below.add(s.entry_point)
    needing = [s.entry_point for s in rest if s.entry_point in below]
    others = [s.entry_point for s in rest if s.entry_point not in below]
    parts = [f"{', '.join(needing)} (need{'s' if len(needing) == 1 else ''} "
             f"{failed.entry_point})"] if needing else []
    parts += [f"{', '.join(others)} (the pipeline stops at the first step that does not "
              "succeed)"] if others else []
    say(f"not run: {'; '.join(parts)}")


def _run_step(plan: Plan, step: Step, backend: Backend, stopper: Stopper,
              invocation: str, options: Options) -> Outcome:
    run_dir = None
    given = (options.run_ids or {}).get(step.entry_point)
    try:  # a full, read-only or unwritable .mlproject: said before anything starts
        if given is not None:  # its queued record was written before the plan started
            run_id, run_dir = given, records.runs_dir(plan.project) / given
        else:
            run_id, run_dir = records.new_run_dir(plan.project)
        started_at, started = records.now(), time.monotonic()
        record = recording.initial(plan, step, run_id, invocation, backend.name, started_at,
                                   options.settings)
        records.write(run_dir, record)
    except OSError as exc:
        if run_dir is not None and given is None:
            shutil.rmtree(run_dir, ignore_errors=True)  # not a run: no record to show as crashed
        raise PreflightError(f"the run cannot be recorded in {records.runs_dir(plan.project)}: "
                             f"{exc.strerror or exc}") from None
    say(f"{step.entry_point}: running (run {run_id})")
    outcome: Outcome
    try:
        with stopper.interruptible():  # a signal ends the build at once, and the step never starts
            # an engine whose worker builds environments is given the recipe, not a prefix
            realized = (realize.unbuilt() if backend.capabilities.builds_environments
                        else realize.environment(step))
        if realized.prefix is not None:
            record = recording.built(record, realized.prefix, realized.built_now,
                                     realized.recipe)
    except Interrupted:
        outcome = Outcome(Status.INTERRUPTED, EXIT_INTERRUPTED, reason=f"interrupted by {stopper.name} "
                          f"while environment {step.environment.name!r} was being prepared")
        return recording.finish(plan, step, record, run_dir, started, outcome)
    except EnvError as exc:
        outcome = Outcome(Status.FAILED, 1, reason=f"environment {step.environment.name!r}: {exc}")
        if stopper.signal is not None:  # the tool died of the signal: its output is not the news
            outcome = Outcome(Status.INTERRUPTED, EXIT_INTERRUPTED, reason=f"interrupted by "
                              f"{stopper.name} while environment {step.environment.name!r} "
                              "was being prepared")
        return recording.finish(plan, step, record, run_dir, started, outcome)
    say(f"$ {step.command}")
    ctx = RunContext(run_id, run_dir, plan.project, {
        "MLPROJECT_RUN_ID": run_id, "MLPROJECT_RUN_DIR": str(run_dir), **realized.activation,
    }, realized.wrapper)
    try:
        submission = backend.prepare(step, ctx)
        if stopper.signal is not None:  # asked to stop before it started: it never starts
            outcome = Outcome(Status.INTERRUPTED, EXIT_INTERRUPTED)
        elif records.cancel_requested(run_dir):  # `mlproject cancel ID` before it started
            outcome = Outcome(Status.CANCELLED, EXIT_INTERRUPTED, reason="cancelled before it "
                              "started")
        else:
            handle = backend.submit(submission)
            record = recording.submitted(record, submission, handle)
            try:  # so that another process can ask the engine about it (`runs`, `logs -f`)
                records.write(run_dir, record)
            except OSError as exc:
                say(f"warning: the record of run {run_id} does not hold the engine's id "
                    f"({exc.strerror or exc})")
            outcome = backend.wait(submission, handle, stopper)
    except SubmitError as exc:  # the engine refused it, or it could not be started at all
        outcome = Outcome(Status.FAILED, exc.exit_code, reason=str(exc))
    except OSError as exc:
        outcome = Outcome(Status.FAILED, 127, reason=f"could not start: {exc}")
    finally:
        realized.hold.release()  # the step has ended: its environment may be pruned now
    return recording.finish(plan, step, record, run_dir, started, outcome)


