"""The worker: one step of a serialized plan, run where an engine put it, the way a local run
runs it. The plan is moved to the checkout here; a step submitted in a chain (its upstream
steps ran on the engine just before) is fingerprinted from what they left and skipped when up to
date; the pinned data is verified (pulled first where the run directory is not shared: nothing
of the submitting machine's workspace is here); the environment is built or reused in this
machine's cache; the command runs under the local backend's guard (memory cgroup, timeout to the
second, SIGTERM from the engine stopping it gracefully). The report (result.py) goes into the
shared run directory, or at the end of stdout as a bundle (bundle.py) with the outputs.

Exit codes: the step's own (as `mlproject run` reports it), 2 for a request it cannot use."""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from mlproject.runner.backends.base import Interrupted, RunContext, Stopper, SubmitError
from mlproject.runner.plan import Plan, Step
from mlproject.runner.state.status import Status
from mlproject.runner.tracking import mlflowstore
from mlproject.runner.util.console import say
from mlproject.runner.util.exitcodes import INTERRUPTED as EXIT_INTERRUPTED
from mlproject.runner.util.exitcodes import STEP_FAILED, USAGE
from mlproject.runner.worker import REQUEST_VAR, RESULT_FILE
from mlproject.runner.worker.request import RequestError, WorkerRequest
from mlproject.runner.worker.result import WorkerResult, write

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mlproject.runner.worker",
                                     description=f"run one step of a plan given in ${REQUEST_VAR}")
    parser.add_argument("--code", help="a tar.gz of the project to unpack into --root first")
    parser.add_argument("--root", help="the project's checkout here")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = _parse(argv)
    text = os.environ.pop(REQUEST_VAR, None)  # the step itself has no use for it
    if not text:
        say(f"worker: no request: ${REQUEST_VAR} is not set")
        return USAGE
    from mlproject.runner.planfile import PlanFileError

    try:
        request = WorkerRequest.decode(text)
        plan = Plan.from_json(request.plan, "the worker request's plan")
    except (RequestError, PlanFileError) as exc:
        say(f"worker: {exc}")
        return USAGE
    root = os.path.abspath(args.root or (plan.project if request.shared else os.getcwd()))
    if args.code:
        from mlproject.runner.worker.codeship import CodeShipError, unpack

        try:
            unpack(args.code, root)
        except CodeShipError as exc:
            say(f"worker: {exc}")
            return USAGE
    from mlproject.runner.plancheck import rebase

    plan = rebase(plan, root)
    step = next((s for s in plan.steps if s.entry_point == request.entry_point), None)
    if step is None:
        say(f"worker: the plan has no step {request.entry_point!r}")
        return USAGE
    run_dir = Path(request.run_dir) if request.shared else Path(
        tempfile.mkdtemp(prefix=f"mlproject-{request.run_id}-"))
    scratch = Path(tempfile.mkdtemp(prefix="mlproject-worker-"))  # the guard's own log copy
    stopper = Stopper()
    previous = {s: signal.signal(s, stopper.request) for s in _SIGNALS}
    try:
        result = _run(plan, step, request, root, run_dir, scratch, stopper)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        shutil.rmtree(scratch, ignore_errors=True)
    _report(result, request, root, run_dir, step)
    return result.exit_code


def _report(result: WorkerResult, request: WorkerRequest, root: str, run_dir: Path,
            step: Step) -> None:
    if request.shared:
        try:
            write(run_dir / RESULT_FILE, result)
        except OSError as exc:
            say(f"worker: the report cannot be written into {run_dir}: "
                f"{exc.strerror or exc}")
        return
    from dataclasses import replace as with_

    from mlproject.runner import tracking
    from mlproject.runner.worker import bundle

    # what the step's code logged stays here with the run directory: it travels in the result
    result = with_(result, tracked=tracking.to_json(tracking.read(run_dir)))
    sys.stdout.flush()
    sys.stderr.flush()
    outputs = [*step.outputs, *([step.metrics] if step.metrics else [])]
    bundle.emit(sys.stdout.buffer, result, root, outputs)
    shutil.rmtree(run_dir, ignore_errors=True)


def _ended(request: WorkerRequest, status: Status, code: int, reason: str | None,
           step: Step, *, signal: int | None = None, enforced: dict[str, str] | None = None,
           peak_memory: int | None = None, environment: dict[str, Any] | None = None,
           up_to_date: str | None = None) -> WorkerResult:
    return WorkerResult(request.run_id, status, code, signal, reason, enforced or {},
                        peak_memory, environment, step.fingerprint, up_to_date,
                        socket.gethostname())


def _run(plan: Plan, step: Step, request: WorkerRequest, root: str, run_dir: Path,
         scratch: Path, stopper: Stopper) -> WorkerResult:
    from mlproject.runner import realize
    from mlproject.runner.backends.local.backend import LocalBackend
    from mlproject.runner.envs.base import EnvError
    from mlproject.runner.state import uptodate

    if request.chained:  # what the upstream steps left is known only now, here
        from mlproject.runner.facts.received import received

        step = received(root, step, {s.entry_point: s for s in plan.steps}, save=True,
                        hash_outputs=uptodate.hash_outputs)
        found = (uptodate.earlier_run(root, step.fingerprint, step.outputs)
                 if step.outputs and not request.force else None)
        if found:
            say(f"{step.entry_point}: up to date (run {found}); not run again")
            return _ended(request, Status.SUCCEEDED, 0, None, step, up_to_date=found)
    if request.shared:
        problem = realize.data_changed(plan, step)
    else:  # nothing of the submitting workspace is here: the pins are fetched first
        problem = "\n".join(realize.check_data(replace(plan, steps=(step,)), pull=True)) or None
    if problem:
        return _ended(request, Status.FAILED, STEP_FAILED, problem, step)
    try:
        with stopper.interruptible():
            realized = realize.environment(step)
    except Interrupted:
        return _ended(request, Status.INTERRUPTED, EXIT_INTERRUPTED, f"interrupted by "
                      f"{stopper.name} while environment {step.environment.name!r} was being "
                      "prepared", step)
    except EnvError as exc:
        return _ended(request, Status.FAILED, STEP_FAILED,
                      f"environment {step.environment.name!r}: {exc}", step)
    environment = ({"prefix": realized.prefix, "built_now": realized.built_now,
                    "recipe": dict(realized.recipe or {})} if realized.prefix else None)
    local = LocalBackend()
    try:
        problems = local.preflight(step, root)
        if problems:
            return _ended(request, Status.FAILED, STEP_FAILED, "; ".join(problems), step,
                          environment=environment)
        mlflow_sets, planned = mlflowstore.variables(run_dir, {**os.environ, **step.env},
                                                     request.experiment, None)
        if planned["ours"]:
            mlflowstore.prepare(run_dir)
        ctx = RunContext(request.run_id, scratch, root, {
            "MLPROJECT_RUN_ID": request.run_id, "MLPROJECT_RUN_DIR": str(run_dir),
            **mlflow_sets, **realized.activation}, realized.wrapper)
        submission = local.prepare(step, ctx)
        if stopper.signal is not None:
            return _ended(request, Status.INTERRUPTED, EXIT_INTERRUPTED,
                          f"interrupted by {stopper.name} before it started", step,
                          environment=environment)
        handle = local.submit(submission)
        outcome = local.wait(submission, handle, stopper)
    except SubmitError as exc:
        return _ended(request, Status.FAILED, exc.exit_code, str(exc), step,
                      environment=environment)
    finally:
        realized.hold.release()
    return _ended(request, outcome.status, outcome.exit_code, outcome.reason, step,
                  signal=outcome.signal, enforced={k: str(v) for k, v in outcome.enforced.items()},
                  peak_memory=outcome.peak_memory, environment=environment)
