"""What every backend is: the seam between mlproject and an engine (this machine, docker, Slurm,
Kubernetes, Ray). See docs/architecture.md for the design and its reasons.

A backend turns a step into a Submission (a value: what would run; `plan --backend` prints it),
submits it and gets back a Handle (serializable: another mlproject process can ask about it),
reports its status, streams its logs, cancels it, and declares its Capabilities. `wait` turns a
submitted step into an Outcome; `poll` is the generic wait an engine backend uses.
"""
from __future__ import annotations

import signal
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mlproject.runner.plan import Plan, Step
from mlproject.runner.state.status import Status
from mlproject.spec.model import Resources


class Interrupted(KeyboardInterrupt):
    """A signal that cut short work of mlproject's own (an environment build): raised from the
    handler, so a wait on a lock, a download or a tool ends at once, cleaned up as Ctrl-C is."""


class Stopper:
    """Set by mlproject's signal handlers; waits poll it and stop (cancel) their step."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self.count = 0  # a second Ctrl-C means: do not wait for a graceful stop
        self._raising = False

    def request(self, signum: int, _frame: Any = None) -> None:
        self.count += 1
        if self.signal is None:
            self.signal = signum
        if self._raising:
            self._raising = False
            raise Interrupted(signum)

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """Inside, a signal raises Interrupted (also one that came before)."""
        if self.signal is not None:
            raise Interrupted(self.signal)
        self._raising = True
        try:
            yield
        finally:
            self._raising = False

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal else ""


class SharedStopper(Stopper):
    """A stopper for steps that run in threads (a sweep's points, a pipeline's steps at once):
    the main thread's handlers mark it, and every thread's wait polls it. It never raises from
    the handler, which would raise in the main thread (waiting on the others): an environment
    being built is let finish, and its step does not start."""

    def request(self, signum: int, _frame: Any = None) -> None:
        self.count += 1
        if self.signal is None:
            self.signal = signum


PLANNED = "RUN_ID"  # the run id a submission shows before there is a run (`plan --backend`)


@dataclass(frozen=True)
class RunContext:
    """What a step gets from its run, beside the plan: known when it runs; placeholders when
    `plan --backend` only shows what would be submitted (`planned`)."""
    run_id: str
    run_dir: Path
    cwd: str  # the project root: steps run there, as in MLflow
    env: Mapping[str, str]  # run-specific variables and the environment's activation
    wrapper: tuple[str, ...] = ()  # argv put before the command by the environment (a container)
    planned: bool = False  # the environment is not realized: its activation is not known yet
    # the plan the step is part of (the worker of an engine runs the step from it); None only
    # where a caller has no plan (a test's)
    plan: Plan | None = None
    # the handles of the upstream steps this one needs that were submitted with it, in one
    # chain (capabilities.chains_steps): the engine holds it until they succeed (Slurm afterok)
    after: tuple[Handle, ...] = ()
    force: bool = False  # run --force: a chained step is run even where it is up to date
    allow_dirty: bool = False  # run --allow-dirty: the working tree is shipped as it is

    @classmethod
    def for_plan(cls, project: str, plan: Plan | None = None) -> RunContext:
        import os

        from mlproject.runner.tracking import mlflowstore

        run_dir = Path(project) / ".mlproject" / "runs" / PLANNED
        # as execute sets them where the engine shares this filesystem (where it does not, the
        # worker sets them on the engine's machine)
        mlflow, _ = mlflowstore.variables(run_dir, os.environ, None, plan.name if plan else None)
        return cls(PLANNED, run_dir, project, {"MLPROJECT_RUN_ID": PLANNED,
                                               "MLPROJECT_RUN_DIR": str(run_dir), **mlflow},
                   planned=True, plan=plan)


@dataclass(frozen=True)
class Capabilities:
    """What a backend's engine can do, so that execute and the CLI ask instead of naming
    backends (snakemake's CommonSettings, kept to what mlproject's callers decide on)."""
    shares_filesystem: bool  # the step sees this project directory and writes outputs into it
    builds_environments: bool  # the worker realizes environments itself (mlproject runs there)
    runs_containers: bool  # an environment that is an image can run here
    detaches: bool  # a submitted step outlives the mlproject that submitted it
    chains_steps: bool  # the engine can hold a dependant until its upstream succeeds
    writes_log: bool  # the engine writes the step's output to Submission.log itself
    poll_interval: float  # seconds between `status` calls of a wait


@dataclass(frozen=True)
class Submission:
    """What would be run, as a value: shown by `plan --backend`, handed to `submit`. `env` holds
    the variables the backend sets over what the engine gives the step; its values are never
    printed (a secret may be one of them), only the names."""
    backend: str
    entry_point: str
    run_id: str
    argv: tuple[str, ...]
    cwd: str
    env: Mapping[str, str]
    resources: Resources  # as requested
    enforcement: Mapping[str, str]  # resource -> how it will be honoured, or "not enforced: why"
    log: str  # where the step's output is kept
    inherits_env: bool = False  # the step also gets mlproject's own environment
    timeout: float | None = None  # enforced by the waiting mlproject (the engine does not)
    # run --queue-timeout: a step still queued after this many seconds is cancelled (`poll`)
    queue_timeout: float | None = None
    script: str | None = None  # the engine's own text: an sbatch script, a Job manifest
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend, "entry_point": self.entry_point, "run_id": self.run_id,
            "argv": list(self.argv), "cwd": self.cwd, "env": sorted(self.env),
            "inherits_env": self.inherits_env, "resources": self.resources.to_json(),
            "enforcement": dict(self.enforcement), "timeout": self.timeout,
            "queue_timeout": self.queue_timeout, "log": self.log,
            "script": self.script, "notes": list(self.notes),
        }

    def render(self) -> list[str]:
        import shlex

        lines = [f"   submission ({self.backend}): {shlex.join(self.argv)}",
                 f"     in {self.cwd}; output to {self.log}"]
        names = ", ".join(sorted(self.env)) or "none"
        inherited = "mlproject's environment, and " if self.inherits_env else ""
        lines.append(f"     environment: {inherited}{names}")
        lines.extend(f"     {name}: {how}" for name, how in self.enforcement.items())
        if self.script:
            lines.extend(f"     | {line}" for line in self.script.splitlines())
        lines.extend(f"     note: {note}" for note in self.notes)
        return lines


class HandleError(ValueError):
    """A handle read back that is not one (a damaged record, another backend's)."""


@dataclass(frozen=True)
class Handle:
    """A submitted step, as the engine knows it. Serializable, because the process that asks
    about it (`runs`, `logs -f`, `cancel`, `wait`, a remote worker) need not be the one that
    submitted it. `id`: the engine's own id (a pid, a container, a Slurm job); `data`: what
    else the backend needs to find it again, plain JSON."""
    backend: str
    run_id: str
    id: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"backend": self.backend, "run_id": self.run_id, "id": self.id,
                "data": dict(self.data)}

    @classmethod
    def from_json(cls, value: Any) -> Handle:
        if not isinstance(value, dict) or set(value) != {"backend", "run_id", "id", "data"}:
            raise HandleError(f"not a handle: {value!r:.200}")
        if not all(isinstance(value[k], str) for k in ("backend", "run_id", "id")) or \
                not isinstance(value["data"], dict):
            raise HandleError(f"not a handle: {value!r:.200}")
        return cls(value["backend"], value["run_id"], value["id"], dict(value["data"]))


@dataclass(frozen=True)
class StepState:
    """What the engine says of a submitted step now."""
    status: Status
    exit_code: int | None = None
    reason: str | None = None  # why it waits, why it ended
    signal: int | None = None


@dataclass
class Patience:
    """How long an engine may leave questions about a step it holds unanswered before the step
    counts as lost: within `grace` seconds of the first unanswered one, the step keeps the status
    it had (`meanwhile`), the error as its reason; after, it is crashed."""
    grace: float
    since: float | None = None  # when the engine first did not answer, of this run of silence

    def answered(self) -> None:
        self.since = None

    def unanswered(self, error: str, lost: str, meanwhile: Status = Status.RUNNING) -> StepState:
        import time

        now = time.monotonic()
        self.since = self.since or now
        if now - self.since < self.grace:
            return StepState(meanwhile, reason=error)
        return StepState(Status.CRASHED, reason=f"{lost}: {error}")


@dataclass(frozen=True)
class Outcome:
    """How a step ended. A value: whoever learns more (outputs not written, a record that cannot
    be completed) makes a new one with `dataclasses.replace`."""
    status: Status
    exit_code: int
    signal: int | None = None
    reason: str | None = None
    enforced: Mapping[str, Any] = field(default_factory=dict)  # how each resource was honoured
    peak_memory: int | None = None
    engine: Mapping[str, Any] = field(default_factory=dict)  # what the engine reported of it
    # an environment the worker built (capabilities.builds_environments): prefix, built_now, recipe
    environment: Mapping[str, Any] | None = None
    # the fingerprint the step had where it ran, where the worker decided it (a chained step:
    # what its upstream steps left was known only there); None: the plan's
    fingerprint: str | None = None
    # what the step's code logged, as the worker read it where the run directory is not shared
    # (tracking.to_json); None: it is in the run directory here
    tracked: Mapping[str, Any] | None = None


class SubmitError(Exception):
    """The engine refused the submission, or it could not be made: the step did not start."""

    def __init__(self, reason: str, exit_code: int = 127) -> None:
        super().__init__(reason)
        self.exit_code = exit_code


class Backend(Protocol):
    name: str
    capabilities: Capabilities

    def preflight(self, step: Step, root: str) -> list[str]:
        """Why the step can never start here (a request the engine cannot meet, an image or a
        build context that is not there); empty when it can. Asked of every step before any
        step starts; `root` is the project's directory."""

    def prepare(self, step: Step, ctx: RunContext) -> Submission:
        """What would run: pure, nothing is started (`plan --backend` calls it too)."""

    def submit(self, submission: Submission) -> Handle:
        """Start it (or queue it); raises SubmitError when it cannot be."""

    def status(self, handle: Handle) -> StepState: ...

    def logs(self, handle: Handle, since: int = 0, follow: bool = False) -> Iterator[bytes]:
        """The step's output after the first `since` bytes; with `follow`, until it ends."""

    def cancel(self, handle: Handle, force: bool = False) -> None:
        """Ask the engine to stop it (`force`: at once, no grace period); returns at once."""

    def wait(self, submission: Submission, handle: Handle, stopper: Stopper) -> Outcome:
        """Until the step ends; cancels it when the stopper is set. Engines use `poll`."""

    # Optional, for whoever records an end the supervising mlproject did not (state/reconcile.py),
    # called through the functions below (not members of the protocol: a backend need not
    # define them):
    # `engine_facts(self, handle: Handle) -> Mapping[str, Any]`: what the engine says of the
    #   ended step, as `wait` puts it in Outcome.engine (asked before `cleanup`);
    # `cleanup(self, handle: Handle) -> None`: remove what the engine keeps of a step whose end
    #   has been recorded (docker: the container); a backend without it keeps nothing to remove.
    # `worker_log(self, handle: Handle) -> bytes | None`: a backend whose steps run mlproject's
    #   worker: the engine's whole log of the ended step, the worker's bundle at its end (None
    #   where the run directory is shared: the worker's report is in it), so that its outputs
    #   and report are taken as `wait` would have (asked before `cleanup`).


def worker_log(backend: Backend, handle: Handle) -> tuple[bool, bytes | None]:
    """Whether the backend's steps run mlproject's worker, and its `worker_log(handle)`."""
    method = getattr(backend, "worker_log", None)
    if not callable(method):
        return False, None
    raw = method(handle)
    return True, raw if isinstance(raw, bytes) else None


def cleanup(backend: Backend, handle: Handle) -> None:
    """The backend's `cleanup(handle)` where it defines one; nothing otherwise."""
    method = getattr(backend, "cleanup", None)
    if callable(method):
        method(handle)


def find(backend: Backend, run_id: str, run_dir: str) -> Handle | None:
    """The backend's `find(run_id, run_dir)` where it defines one: the handle of a step the
    engine holds whose record never got it (its supervisor died right after submitting)."""
    method = getattr(backend, "find", None)
    found: Handle | None = method(run_id, run_dir) if callable(method) else None
    return found


def engine_facts(backend: Backend, handle: Handle) -> Mapping[str, Any]:
    """The backend's `engine_facts(handle)` where it defines one; nothing otherwise."""
    method = getattr(backend, "engine_facts", None)
    facts: Mapping[str, Any] = method(handle) if callable(method) else {}
    return facts
