"""The mlproject worker: what an engine that is not this machine (Slurm, Kubernetes, Ray) runs
for a step. It is mlproject itself, running one step of a serialized plan where the engine put
it: the environment built there, the data verified there, the command under the local guard,
and a report of what happened (the worker result) for the mlproject that submitted it.

This module is the submitting side's view, kept cheap to import: the request an engine carries
to the worker (in REQUEST_VAR), the worker's command, and what to make of its report.
`python -m mlproject.runner.worker` is the worker itself (step.py)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from mlproject.runner.backends.base import Outcome, RunContext, Submission
    from mlproject.runner.plan import Step
    from mlproject.runner.worker.result import WorkerResult

REQUEST_VAR = "MLPROJECT_WORKER_REQUEST"  # the request, encoded (request.encode); never shown
RESULT_FILE = "worker.json"  # the worker's report in the run directory, where it is shared
PLACEHOLDER = "<the worker request: set at submit>"  # what `plan --backend` shows for its value


def request_for(step: Step, ctx: RunContext, *, shared: bool) -> str:
    """The value of REQUEST_VAR for running `step` as `ctx` says. `shared`: the engine's worker
    sees this project directory and the run directory at the same paths (Slurm on a shared
    filesystem); otherwise the code travels (codeship) and the result comes back in the log."""
    if ctx.planned or ctx.plan is None:
        return PLACEHOLDER
    from mlproject.runner.worker.request import WorkerRequest

    return WorkerRequest.for_step(ctx.plan, step, ctx, shared=shared).encode()


def argv(python: str = "python3", *, code: str | None = None,
         root: str | None = None) -> list[str]:
    """The worker's command line. `code`: a tar.gz of the project (codeship.archive) to unpack
    into `root` first; `root`: the project's checkout on the worker (default: the plan's own
    directory where it is shared, else the working directory the engine gives)."""
    command = [python, "-m", "mlproject.runner.worker"]
    if code is not None:
        command += ["--code", code]
    if root is not None:
        command += ["--root", root]
    return command


def shown(raw_log: bytes) -> bytes:
    """The step's output as the engine kept it, less the worker's result bundle (and less the
    start of one not yet complete): what a backend's `logs` yields and keeps as log.txt."""
    from mlproject.runner.worker import bundle

    return bundle.split(raw_log)[0]


def collect(submission: Submission, raw_log: bytes | None = None) -> WorkerResult | None:
    """The worker's report of an ended step: unpacked from the bundle at the end of `raw_log`
    (the outputs into the project, the result into the run directory), or read from the run
    directory where the engine shares it (`raw_log` None). None: the worker reported nothing."""
    from mlproject.runner.worker import result

    return result.collect(submission, raw_log)


def adopted(run_dir: Path, run_id: str, plan: dict[str, Any], entry_point: str,
            raw_log: bytes | None) -> WorkerResult | None:
    """The worker's report of a step whose submitting mlproject is gone (reconcile), from what
    its record keeps: its plan says which outputs may come back, and into which project."""
    from mlproject.runner.worker import result
    from mlproject.runner.worker.request import WorkerRequest

    request = None if raw_log is None else WorkerRequest(
        plan, entry_point, run_id, str(run_dir), shared=False, chained=False, force=False)
    return result.collect_into(run_dir, run_id, request, raw_log)


def merged(outcome: Outcome, report: WorkerResult | None) -> Outcome:
    """The engine's outcome of a step, completed by its worker's report."""
    from mlproject.runner.worker import result

    return result.merged(outcome, report)
