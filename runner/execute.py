"""The plan meets the world: skip what is up to date, run each step on a backend, record it."""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlproject.runner import __version__, backends, records, uptodate
from mlproject.runner.backends.base import Outcome, RunContext, Stopper
from mlproject.runner.console import say
from mlproject.runner.envs.base import EnvError
from mlproject.runner.envs.recipes import EnvFact
from mlproject.runner.metrics import read as read_metrics
from mlproject.runner.plan import Plan, Step

if TYPE_CHECKING:
    from mlproject.runner.data.pins import Pin

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class PreflightError(Exception):
    """A step that cannot start at all (exit code 2: nothing ran, nothing was recorded)."""


@dataclass(frozen=True)
class Options:
    backend: str = "local"
    force: bool = False
    pull: bool = False  # materialize pinned data that does not match before running


def _check_data(plan: Plan, pins: Mapping[str, Pin], pull: bool) -> list[str]:
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


def preflight(plan: Plan, backend_name: str) -> list[str]:
    """Everything that would stop a step from starting, found before any step starts."""
    backend = backends.get(backend_name)
    problems = []
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
            if not os.path.exists(path):
                problems.append(f"parameter {name} (path): {path} does not exist")
        problems.extend(backend.preflight(step))
    return problems


def execute(plan: Plan, options: Options, envs: Mapping[str, EnvFact] | None = None,
            pins: Mapping[str, Pin] | None = None) -> int:
    """Run the plan's steps in order; the exit code of the first that does not succeed, else 0."""
    problems = preflight(plan, options.backend) or _check_data(plan, pins or {}, options.pull)
    if problems:
        raise PreflightError("\n".join(problems))
    backend = backends.get(options.backend)
    stopper = Stopper()
    previous = {s: signal.signal(s, stopper.request) for s in _SIGNALS}
    invocation = os.urandom(8).hex()
    try:
        for step in plan.steps:
            if stopper.signal is not None:
                return EXIT_INTERRUPTED
            if step.outputs and not options.force:
                done = uptodate.find(plan.project, step.fingerprint, step.outputs)
                if done:
                    say(f"{step.entry_point}: up to date (run {done}); --force runs it anyway")
                    continue
            outcome = _run_step(plan, step, backend, stopper, invocation, (envs or {}).get(
                step.environment.name))
            if outcome.status != "succeeded":
                return outcome.exit_code
        return 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _realize(fact: EnvFact | None, record: dict[str, Any]) -> dict[str, str]:
    """Build (or reuse) the step's environment; the variables that run a command inside it."""
    if fact is None or fact.recipe is None:
        return {}
    from mlproject.runner.envs.store import Store

    prefix, built = Store().ensure(fact.recipe, say)
    record["environment"].update(prefix=str(prefix), built_now=built, recipe=fact.recipe.describe())
    return fact.recipe.activate(prefix, os.environ)


def _run_step(plan: Plan, step: Step, backend: Any, stopper: Stopper, invocation: str,
              fact: EnvFact | None) -> Outcome:
    run_id, run_dir = records.new_run_dir(plan.project)
    started_at, started = records.now(), time.monotonic()
    record = _initial_record(plan, step, run_id, invocation, backend.name, started_at)
    records.write(run_dir, record)
    say(f"{step.entry_point}: running (run {run_id})")
    outcome: Outcome
    try:
        activation = _realize(fact, record)
    except EnvError as exc:
        outcome = Outcome("failed", 1, reason=f"environment {step.environment.name!r}: {exc}")
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
    record["outputs"] = uptodate.hash_outputs(root, step.outputs)
    missing = [path for path, found in record["outputs"].items() if found is None]
    if missing and outcome.status == "succeeded":
        outcome.status, outcome.exit_code = "failed", 1
        outcome.reason = f"declared output{'s' if len(missing) > 1 else ''} not written: " \
                         + ", ".join(missing)
    record.update({
        "status": outcome.status, "exit_code": outcome.exit_code, "signal": outcome.signal,
        "reason": outcome.reason, "ended_at": records.now().isoformat(),
        "duration": round(time.monotonic() - started, 3),
    })
    record["resources"].update(enforced=outcome.enforced, peak_memory=outcome.peak_memory)
    records.write(run_dir, record)
    if outcome.status == "succeeded" and step.outputs:
        uptodate.remember(root, step.fingerprint, record["id"], record["outputs"])
    detail = f": {outcome.reason}" if outcome.reason else ""
    say(f"{step.entry_point}: {outcome.status} in {record['duration']:.2f}s, exit code "
        f"{outcome.exit_code}{detail} (run {record['id']})")
