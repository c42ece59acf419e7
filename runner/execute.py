"""The plan meets the world: skip what is up to date, run each step on a backend, record it."""
from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlproject.runner import __version__, backends
from mlproject.runner.backends.base import Interrupted, Outcome, RunContext, Stopper
from mlproject.runner.envs.base import EnvError
from mlproject.runner.envs.recipes import EnvFact
from mlproject.runner.facts import observe
from mlproject.runner.plan import Plan, Step, inside
from mlproject.runner.state import records, uptodate
from mlproject.runner.state.metrics import read as read_metrics
from mlproject.runner.util.console import say
from mlproject.runner.util.exitcodes import INTERRUPTED as EXIT_INTERRUPTED
from mlproject.runner.util.exitcodes import USAGE as EXIT_USAGE

if TYPE_CHECKING:
    from mlproject.runner.data.pins import DataPin
    from mlproject.runner.envs.store import Hold

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class PreflightError(Exception):
    """A step that cannot start at all (exit code 2: nothing ran, nothing was recorded)."""


@dataclass(frozen=True)
class Options:
    backend: str = "local"
    force: bool = False
    pull: bool = False  # materialize pinned data that does not match before running


def _check_data(plan: Plan, pins: Mapping[str, DataPin], pull: bool) -> list[str]:
    """Every pinned input the steps read must match its pin (pulled first with --pull)."""
    used = [pins[name] for name in dict.fromkeys(n for s in plan.steps for n in s.data) if name in pins]
    if not used:
        return []
    from mlproject.runner.data.pins import DataError
    from mlproject.runner.data.pull import pull as pull_pin
    from mlproject.runner.data.verify import require

    try:
        if pull:
            for pin in used:
                pull_pin(plan.project, pin, log=say)
        require(plan.project, used)
    except DataError as exc:
        return [str(exc)]
    return []


def _data_changed(plan: Plan, step: Step, pins: Mapping[str, DataPin]) -> str | None:
    """Why the pinned data `step` reads no longer matches its pin, checked right before it runs
    (a step before it may have written over it), or None. Never pulled here: what an earlier
    step wrote is not overwritten behind the user's back."""
    used = [pins[name] for name in step.data if name in pins]
    if not used:
        return None
    from mlproject.runner.data.pins import DataError
    from mlproject.runner.data.verify import require

    try:
        require(plan.project, used)
    except DataError as exc:
        return f"pinned data changed during the run, before this step started:\n{exc}"
    return None


def _refuse(plan: Plan, step: Step, invocation: str, backend: str, reason: str) -> int:
    """A step that must not start: recorded as failed with its reason; the pipeline stops."""
    try:
        run_id, run_dir = records.new_run_dir(plan.project)
        record = _initial_record(plan, step, run_id, invocation, backend, records.now())
        record.update(status="failed", exit_code=1, reason=reason, duration=0.0,
                      ended_at=record["started_at"])
        records.write(run_dir, record)
    except OSError as exc:
        say(f"{step.entry_point}: not started: {reason}\n(and not recorded: {exc})")
        return 1
    say(f"{step.entry_point}: failed before it started: {reason} (run {run_id})")
    return 1


def preflight(plan: Plan, backend_name: str) -> list[str]:
    """Everything that would stop a step from starting, found before any step starts."""
    backend = backends.get(backend_name)
    problems = []
    written = [os.path.normpath(os.path.join(plan.project, out)) for s in plan.steps
               for out in (*s.outputs, *([s.metrics] if s.metrics else []))]
    for step in plan.steps:
        env = step.environment
        if env.problem:
            problems.append(f"entry point {step.entry_point!r}: environment {env.name!r}: "
                            f"{env.problem}")
        elif env.kind == "docker":
            problems.append(
                f"entry point {step.entry_point!r} runs in container image {env.detail} "
                f"(environment {env.name!r}): the {backend_name} backend runs no containers; "
                "run with --env local to use the current interpreter")
        for name, path in step.paths.items():
            # what a step of the plan writes need not exist before the run
            if not os.path.exists(path) and not inside(path, written):
                problems.append(f"parameter {name} (path): {path} does not exist")
        problems.extend(backend.preflight(step))
    return problems


def execute(plan: Plan, options: Options, envs: Mapping[str, EnvFact] | None = None,
            pins: Mapping[str, DataPin] | None = None) -> int:
    """Run the plan's steps in order; the exit code of the first that does not succeed, else 0."""
    problems = preflight(plan, options.backend) or _check_data(plan, pins or {}, options.pull)
    if problems:
        raise PreflightError("\n".join(problems))
    backend = backends.get(options.backend)
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
            step = observe(plan.project, planned, done, save=True,
                           hash_outputs=uptodate.hash_outputs)
            done[step.entry_point] = step
            current = replace(plan, steps=tuple(done.get(s.entry_point, s) for s in plan.steps))
            if step.outputs and not options.force:
                found = uptodate.earlier_run(plan.project, step.fingerprint, step.outputs)
                if found:
                    say(f"{step.entry_point}: up to date (run {found}); --force runs it anyway")
                    continue
            problem = None if verified else _data_changed(plan, step, pins or {})
            if problem:
                return _refuse(current, step, invocation, backend.name, problem)
            outcome = _run_step(current, step, backend, stopper, invocation, (envs or {}).get(
                step.environment.name))
            verified = False
            if outcome.status != "succeeded":
                return outcome.exit_code
        return 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _realize(fact: EnvFact | None, record: dict[str, Any]) -> tuple[dict[str, str], Hold]:
    """Build (or reuse) the step's environment; the variables that run a command inside it, and
    the hold on it that keeps `env prune` away until the caller releases it (the step ended)."""
    from mlproject.runner.envs.store import EnvStore, Hold

    if fact is None or fact.recipe is None:
        return {}, Hold(None)
    store = EnvStore()
    hold = store.hold(fact.recipe.key, say)  # before the check: nothing prunes it after that
    try:
        prefix, built = store.ensure(fact.recipe, say)
        # Right before the step: a step never falls through to the next `python` on PATH.
        problem = store.problem(fact.recipe)
        if problem is not None:
            raise EnvError(f"{prefix} cannot be used: {problem}")
    except BaseException:
        hold.release()
        raise
    record["environment"].update(prefix=str(prefix), built_now=built, recipe=fact.recipe.describe())
    return fact.recipe.activate(prefix, os.environ), hold


def _run_step(plan: Plan, step: Step, backend: Any, stopper: Stopper, invocation: str,
              fact: EnvFact | None) -> Outcome:
    run_dir = None
    try:  # a full, read-only or unwritable .mlproject: said before anything starts
        run_id, run_dir = records.new_run_dir(plan.project)
        started_at, started = records.now(), time.monotonic()
        record = _initial_record(plan, step, run_id, invocation, backend.name, started_at)
        records.write(run_dir, record)
    except OSError as exc:
        if run_dir is not None:
            shutil.rmtree(run_dir, ignore_errors=True)  # not a run: no record to show as crashed
        raise PreflightError(f"the run cannot be recorded in {records.runs_dir(plan.project)}: "
                             f"{exc.strerror or exc}") from None
    say(f"{step.entry_point}: running (run {run_id})")
    outcome: Outcome
    try:
        with stopper.interruptible():  # a signal ends the build at once, and the step never starts
            activation, hold = _realize(fact, record)
    except Interrupted:
        outcome = Outcome("interrupted", EXIT_INTERRUPTED, reason=f"interrupted by {stopper.name} "
                          f"while environment {step.environment.name!r} was being prepared")
        _finish(plan, step, record, run_dir, started, outcome)
        return outcome
    except EnvError as exc:
        outcome = Outcome("failed", 1, reason=f"environment {step.environment.name!r}: {exc}")
        if stopper.signal is not None:  # the tool died of the signal: its output is not the news
            outcome = Outcome("interrupted", EXIT_INTERRUPTED, reason=f"interrupted by "
                              f"{stopper.name} while environment {step.environment.name!r} "
                              "was being prepared")
        _finish(plan, step, record, run_dir, started, outcome)
        return outcome
    say(f"$ {step.command}")
    ctx = RunContext(run_id, run_dir, plan.project, {
        "MLPROJECT_RUN_ID": run_id, "MLPROJECT_RUN_DIR": str(run_dir), **activation,
    }, stopper)
    try:
        outcome = backend.run(step, ctx)
    except OSError as exc:  # the command could not be started at all
        outcome = Outcome("failed", 127, reason=f"could not start: {exc}")
    finally:
        hold.release()  # the step has ended: its environment may be pruned now
    _finish(plan, step, record, run_dir, started, outcome)
    return outcome


def _initial_record(plan: Plan, step: Step, run_id: str, invocation: str, backend: str,
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


def _finish(plan: Plan, step: Step, record: dict[str, Any], run_dir: Path, started: float,
            outcome: Outcome) -> None:
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
        outcome.status, outcome.exit_code = "failed", 1
        reasons = ([f"declared output{'s' if len(missing) > 1 else ''} not written: "
                    + ", ".join(missing)] if missing else []) + list(found.problems.values())
        outcome.reason = "; ".join(reasons)
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
            outcome.status, outcome.exit_code = "failed", EXIT_USAGE
            outcome.reason = "the run's record cannot be written"
    if outcome.status == "succeeded" and step.outputs:
        try:
            uptodate.remember(root, step.fingerprint, record["id"], record["outputs"])
        except OSError as exc:
            say(f"warning: not remembered as up to date ({exc.strerror or exc})")
    detail = f": {outcome.reason}" if outcome.reason else ""
    say(f"{step.entry_point}: {outcome.status} in {record['duration']:.2f}s, exit code "
        f"{outcome.exit_code}{detail} (run {record['id']})")
