"""The plan meets the world: skip what is up to date, run each step on a backend, record it."""
from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlproject.runner import backends, realize, recording
from mlproject.runner.backends.base import (
    Backend,
    Handle,
    Interrupted,
    Outcome,
    RunContext,
    Stopper,
    Submission,
    SubmitError,
)
from mlproject.runner.envs.base import EnvError
from mlproject.runner.envs.kinds import kind
from mlproject.runner.facts.received import received
from mlproject.runner.plan import Plan, Step, inside
from mlproject.runner.state import records, uptodate
from mlproject.runner.state.record import RunRecord
from mlproject.runner.state.status import Status
from mlproject.runner.tracking import mlflowstore
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
    allow_dirty: bool = False  # ship a working tree with uncommitted changes (recorded)
    queue_timeout: float | None = None  # cancel a step still queued after this many seconds
    sweep: Mapping[str, Any] | None = None  # {id, name, index}: the step is a sweep's point
    jobs: int = 1  # steps that do not need one another run at once, up to this many
    experiment: str | None = None  # --experiment-name: the MLflow experiment the steps log to
    run_name: str | None = None  # --run-name, recorded


def preflight(plan: Plan, backend_name: str, settings: Mapping[str, Any] | None = None,
              allow_dirty: bool = False) -> list[str]:
    """Everything that would stop a step from starting, found before any step starts."""
    backend = backends.get(backend_name, settings)
    problems = []
    declared = [out for s in plan.steps for out in (*s.outputs, *([s.metrics] if s.metrics
                                                                   else []))]
    written = [os.path.normpath(os.path.join(plan.project, out)) for out in declared]
    if not backend.capabilities.shares_filesystem and not allow_dirty:
        problems.extend(_unshipped(plan, backend_name, declared))
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


def _unshipped(plan: Plan, backend_name: str, declared: list[str]) -> list[str]:
    """An engine that does not see this filesystem runs the recorded commit: uncommitted
    changes would silently not be part of the run."""
    from mlproject.runner.worker.codeship import dirty

    files = dirty(plan.project, declared)
    if not files:
        return []
    shown = ", ".join(files[:10]) + (f" (and {len(files) - 10} more)" if len(files) > 10 else "")
    return [f"the project has uncommitted changes that the {backend_name} engine would not see "
            f"(it runs the recorded commit, not this working tree): {shown}; commit them, or "
            "run with --allow-dirty to ship the working tree as it is (recorded in each run)"]


def check(plan: Plan, options: Options) -> None:
    """PreflightError saying everything that keeps the plan from starting (exit 2, nothing
    submitted): a step the backend cannot run, data not as pinned, a lock that is not ours."""
    problems = (preflight(plan, options.backend, options.settings, options.allow_dirty)
                or realize.check_data(plan, options.pull))
    if problems:
        raise PreflightError("\n".join(problems))
    from mlproject.runner.gitops import lockfile

    try:  # a lock that is not one we read is refused before anything runs: never overwritten
        lockfile.read(plan.project)
    except lockfile.LockError as exc:
        raise PreflightError(str(exc)) from None


def execute(plan: Plan, options: Options) -> int:
    """Run the plan's steps in order; the exit code of the first that does not succeed, else 0.
    The plan is all it needs: environments are rebuilt from its data, pins are its steps'."""
    check(plan, options)
    backend = backends.get(options.backend, options.settings)
    invocation = os.urandom(8).hex()
    if options.jobs > 1 and len(plan.steps) > 1 and not backend.capabilities.chains_steps:
        from mlproject.runner import parallel

        return parallel.execute(plan, backend, invocation, options.jobs, options)
    stopper = Stopper()
    previous = {s: signal.signal(s, stopper.request) for s in _SIGNALS}
    try:
        if backend.capabilities.chains_steps and len(plan.steps) > 1:
            return _run_chain(plan, backend, stopper, invocation, options)
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


@dataclass(frozen=True)
class _Submitted:
    """A step the engine has (or that a wait will find ended): what finishing it needs."""
    step: Step
    record: RunRecord
    run_dir: Path
    started: float  # time.monotonic() when its record was started
    submission: Submission
    handle: Handle
    realized: realize.Realized


def run_point(plan: Plan, step: Step, backend: Backend, stopper: Stopper, invocation: str,
              options: Options) -> Outcome:
    """One step run and recorded, as `execute` runs each (a sweep's point: the caller has
    checked the plan, and handles signals)."""
    return _run_step(plan, step, backend, stopper, invocation, options)


def _run_step(plan: Plan, step: Step, backend: Backend, stopper: Stopper,
              invocation: str, options: Options) -> Outcome:
    submitted = _submit_step(plan, step, backend, stopper, invocation, options)
    if isinstance(submitted, Outcome):
        return submitted
    assert isinstance(submitted, _Submitted)
    return _await(plan, submitted, backend, stopper)


def _submit_step(plan: Plan, step: Step, backend: Backend, stopper: Stopper, invocation: str,
                 options: Options, after: tuple[Handle, ...] = (),
                 held_by: tuple[str, ...] = (), submit: bool = True
                 ) -> _Submitted | Prepared | Outcome:
    """Record the step's start, realize its environment, prepare and submit it; the Outcome,
    recorded, of a step that ended before the engine had it."""
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
        if options.sweep is not None:
            record = replace(record, sweep=dict(options.sweep))
        # MLflow's calls in the step land in a store of the run's own (read into the record);
        # where the step runs on another machine, its worker points them there itself
        mlflow_sets, mlflow_planned = mlflowstore.variables(
            run_dir, {**os.environ, **step.env}, options.experiment, plan.name)
        if not backend.capabilities.shares_filesystem:  # the experiment travels in the request
            mlflow_sets = {"MLFLOW_EXPERIMENT_NAME": mlflow_planned["experiment"]}
        elif mlflow_planned["ours"]:
            mlflowstore.prepare(run_dir)
        record = replace(record, mlflow=mlflowstore.completed(mlflow_planned, None),
                         run_name=options.run_name)
        if not backend.capabilities.shares_filesystem:  # the code travels: say which
            record = replace(record, code={**record.code, "shipped": (
                "the working tree as it was (--allow-dirty)" if options.allow_dirty
                else "the recorded commit's tree")})
        records.write(run_dir, record)
    except OSError as exc:
        if run_dir is not None and given is None:
            shutil.rmtree(run_dir, ignore_errors=True)  # not a run: no record to show as crashed
        raise PreflightError(f"the run cannot be recorded in {records.runs_dir(plan.project)}: "
                             f"{exc.strerror or exc}") from None
    say(f"{step.entry_point}: {'submitting' if after else 'running'} (run {run_id})")
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
    if not after:
        say(f"$ {step.command}")
    ctx = RunContext(run_id, run_dir, plan.project, {
        "MLPROJECT_RUN_ID": run_id, "MLPROJECT_RUN_DIR": str(run_dir), **mlflow_sets,
        **realized.activation,
    }, realized.wrapper, plan=plan, after=after, force=options.force,
        allow_dirty=options.allow_dirty)
    try:
        submission = replace(backend.prepare(step, ctx), queue_timeout=options.queue_timeout)
        if stopper.signal is not None:  # asked to stop before it started: it never starts
            outcome = Outcome(Status.INTERRUPTED, EXIT_INTERRUPTED)
        elif records.cancel_requested(run_dir):  # `mlproject cancel ID` before it started
            outcome = Outcome(Status.CANCELLED, EXIT_INTERRUPTED, reason="cancelled before it "
                              "started")
        else:
            prepared = Prepared(step, record, run_dir, started, submission, realized)
            if not submit:
                return prepared
            return submitted_step(prepared, backend.submit(submission), held_by)
    except SubmitError as exc:  # the engine refused it, or it could not be started at all
        outcome = Outcome(Status.FAILED, exc.exit_code, reason=str(exc))
    except OSError as exc:
        outcome = Outcome(Status.FAILED, 127, reason=f"could not start: {exc}")
    realized.hold.release()
    return recording.finish(plan, step, record, run_dir, started, outcome)


@dataclass(frozen=True)
class Prepared:
    """A step recorded, its environment realized, its submission prepared: what submitting it
    (alone, or with others in one request: a sweep's job array) needs."""
    step: Step
    record: RunRecord
    run_dir: Path
    started: float
    submission: Submission
    realized: realize.Realized


def submitted_step(prepared: Prepared, handle: Handle,
                   held_by: tuple[str, ...] = ()) -> _Submitted:
    """The record of a step the engine now has: its handle written, so that another process
    can ask the engine about it (`runs`, `logs -f`)."""
    record = recording.submitted(prepared.record, prepared.submission, handle)
    if held_by:  # the engine starts it once what it needs has succeeded
        record = replace(record, status=Status.QUEUED, reason="held by the engine until "
                         f"{', '.join(held_by)} succeed{'s' if len(held_by) == 1 else ''}")
    try:
        records.write(prepared.run_dir, record)
    except OSError as exc:
        say(f"warning: the record of run {record.id} does not hold the engine's id "
            f"({exc.strerror or exc})")
    return _Submitted(prepared.step, record, prepared.run_dir, prepared.started,
                      prepared.submission, handle, prepared.realized)


def prepare_point(plan: Plan, step: Step, backend: Backend, stopper: Stopper, invocation: str,
                  options: Options) -> Prepared | Outcome:
    """A sweep's point recorded and prepared, not submitted (it goes in a job array); the
    Outcome, recorded, of a point that ended before that."""
    found = _submit_step(plan, step, backend, stopper, invocation, options, submit=False)
    assert not isinstance(found, _Submitted)
    return found


def await_point(plan: Plan, submitted: _Submitted, backend: Backend, stopper: Stopper,
                stopped_by: str | None = None) -> Outcome:
    """Wait for a submitted point to end, and record its end."""
    return _await(plan, submitted, backend, stopper, stopped_by)


def _await(plan: Plan, submitted: _Submitted, backend: Backend, stopper: Stopper,
           stopped_by: str | None = None) -> Outcome:
    """Wait for a submitted step to end, and record its end. `stopped_by`: the pipeline was
    stopped (by that step's end) and this one cancelled for it: said as its reason."""
    try:
        outcome = backend.wait(submitted.submission, submitted.handle, stopper)
    except SubmitError as exc:
        outcome = Outcome(Status.FAILED, exc.exit_code, reason=str(exc))
    except OSError as exc:
        outcome = Outcome(Status.FAILED, 127, reason=f"lost: {exc}")
    finally:
        submitted.realized.hold.release()  # the step has ended: its environment may be pruned
    if stopped_by is not None and outcome.status in (Status.CANCELLED, Status.INTERRUPTED):
        outcome = replace(outcome, status=Status.CANCELLED, reason=f"not run to its end: "
                          f"the pipeline stopped at {stopped_by}")
    return recording.finish(plan, submitted.step, submitted.record, submitted.run_dir,
                            submitted.started, outcome)


def _run_chain(plan: Plan, backend: Backend, stopper: Stopper, invocation: str,
               options: Options) -> int:
    """The pipeline submitted at once to an engine that holds each step until the steps it needs
    succeed (Slurm --dependency=afterok), then waited for in order. A step that needs one in the
    chain is fingerprinted, and skipped when up to date, by its worker (only there is what its
    upstream steps left known). The first that does not succeed stops the pipeline: the rest
    are cancelled (the engine already drops those that needed it), and its code is returned."""
    chain: dict[str, _Submitted] = {}
    done: dict[str, Step] = {}
    code = 0
    stopped_by: str | None = None
    for planned in plan.steps:
        if stopper.signal is not None or code:
            break
        held_by = tuple(n for n in planned.needs if n in chain)
        upstream = tuple(chain[n].handle for n in held_by)
        step = planned
        if not upstream:
            step = received(plan.project, planned, done, save=True,
                            hash_outputs=uptodate.hash_outputs)
            if step.outputs and not options.force:
                found = uptodate.earlier_run(plan.project, step.fingerprint, step.outputs)
                if found:
                    say(f"{step.entry_point}: up to date (run {found}); --force runs it anyway")
                    recording.relock(plan.project, step, found)
                    done[step.entry_point] = step
                    continue
        done[step.entry_point] = step
        current = replace(plan, steps=tuple(done.get(s.entry_point, s) for s in plan.steps))
        submitted = _submit_step(current, step, backend, stopper, invocation, options, upstream,
                                 held_by)
        assert not isinstance(submitted, Prepared)
        if isinstance(submitted, Outcome):
            if submitted.status != Status.SUCCEEDED:
                code, stopped_by = submitted.exit_code, step.entry_point
        else:
            chain[step.entry_point] = submitted
    if stopper.signal is not None and not code:
        code = EXIT_INTERRUPTED
    for name, submitted in chain.items():
        if stopped_by is not None or stopper.signal is not None:
            backend.cancel(submitted.handle)
        outcome = _await(plan, submitted, backend, stopper, stopped_by)
        if outcome.status != Status.SUCCEEDED and stopped_by is None:
            code, stopped_by = outcome.exit_code, name
    if stopped_by is not None:
        failed = next(s for s in plan.steps if s.entry_point == stopped_by)
        _not_run(replace(plan, steps=tuple(s for s in plan.steps if s.entry_point not in chain
                                           or s.entry_point == stopped_by)), failed)
    return code
