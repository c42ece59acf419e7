"""`mlproject run --jobs N`: a pipeline's steps that do not need one another run at once (DVC
runs a pipeline's stages one after another: iterative/dvc#755).

A step starts once every step it needs has succeeded, at most N at a time, in the plan's order
among those ready. Each runs exactly as `execute` runs one (its fingerprint from what its
upstream steps left, skipped when up to date, its pinned data checked again once a step has
run, recorded), in a thread of this process, its output shown line by line behind `[step]`.
The first step that does not succeed stops the pipeline: no step starts after it, the steps
already running finish and are recorded, and its exit code is the run's. Signals reach the
main thread, whose handlers mark the stopper that every step's wait polls."""
from __future__ import annotations

import signal
import threading
from dataclasses import replace

from mlproject.runner import realize, recording
from mlproject.runner.backends.base import Backend, SharedStopper
from mlproject.runner.facts.received import received
from mlproject.runner.plan import Plan, Step
from mlproject.runner.state import uptodate
from mlproject.runner.state.status import Status
from mlproject.runner.util import console
from mlproject.runner.util.exitcodes import INTERRUPTED as EXIT_INTERRUPTED

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _Pipeline:
    """Which steps are waiting, running and done; guarded by one condition."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.names = [s.entry_point for s in plan.steps]
        self.waiting = list(plan.steps)
        self.running: set[str] = set()
        self.succeeded: dict[str, Step] = {}  # as received, for the steps that need them
        self.failed: str | None = None
        self.code = 0
        self.ran = False  # a step has run: pinned data is checked again before the next
        self.cond = threading.Condition()

    def next(self, stopper: SharedStopper) -> Step | None:
        """The next step to run, waiting until one is ready; None when none will be."""
        with self.cond:
            while True:
                if stopper.signal is not None or self.failed is not None:
                    return None
                for step in self.waiting:
                    if all(n in self.succeeded for n in step.needs if n in self.names):
                        self.waiting.remove(step)
                        self.running.add(step.entry_point)
                        return step
                if not self.running:
                    return None
                self.cond.wait(0.2)

    def ended(self, step: Step, code: int, status: Status) -> None:
        with self.cond:
            self.running.discard(step.entry_point)
            if status == Status.SUCCEEDED:
                self.succeeded[step.entry_point] = step
            elif self.failed is None:
                self.failed, self.code = step.entry_point, code
            self.cond.notify_all()


def execute(plan: Plan, backend: Backend, invocation: str, jobs: int,
            options: object) -> int:
    """Run the plan's steps, up to `jobs` at once; the exit code as `execute.execute` says it."""
    from mlproject.runner import execute as runner

    assert isinstance(options, runner.Options)
    stopper = SharedStopper()
    previous = {s: signal.signal(s, stopper.request) for s in _SIGNALS}
    pipeline = _Pipeline(plan)

    def one(planned: Step) -> None:
        with pipeline.cond:
            done = dict(pipeline.succeeded)
            check_data = pipeline.ran
            pipeline.ran = True
        step = received(plan.project, planned, done, save=True,
                        hash_outputs=uptodate.hash_outputs)
        current = replace(plan, steps=tuple(done.get(s.entry_point, s) if s is not planned
                                            else step for s in plan.steps))
        if step.outputs and not options.force:
            found = uptodate.earlier_run(plan.project, step.fingerprint, step.outputs)
            if found:
                console.say(f"{step.entry_point}: up to date (run {found}); --force runs it "
                            "anyway")
                recording.relock(plan.project, step, found)
                pipeline.ended(step, 0, Status.SUCCEEDED)
                return
        problem = realize.data_changed(plan, step) if check_data else None
        if problem:
            code = recording.refuse(current, step, invocation, backend.name, problem)
            pipeline.ended(step, code, Status.FAILED)
            return
        outcome = runner.run_point(current, step, backend, stopper, invocation, options)
        pipeline.ended(step, outcome.exit_code, outcome.status)

    def worker() -> None:
        while True:
            step = pipeline.next(stopper)
            if step is None:
                return
            with console.prefixed(step.entry_point):
                try:
                    one(step)
                except Exception as exc:
                    console.announce(f"{step.entry_point}: not run to its end: "
                                     f"{type(exc).__name__}: {exc}")
                    pipeline.ended(step, 70, Status.FAILED)

    try:
        threads = [threading.Thread(target=worker, name=f"step-{n}", daemon=True)
                   for n in range(min(jobs, len(plan.steps)))]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)  # the main thread takes the signals
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    left = [s.entry_point for s in pipeline.waiting]
    if pipeline.failed is not None:
        if left:
            console.say(f"not run: {', '.join(left)} (the pipeline stops at the first step "
                        f"that does not succeed: {pipeline.failed})")
        return pipeline.code
    if stopper.signal is not None:
        return EXIT_INTERRUPTED
    return 0
