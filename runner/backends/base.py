"""What every backend is: prepare a step (or say why it cannot run), then run it to an Outcome."""
from __future__ import annotations

import signal
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mlproject.runner.plan import Step
from mlproject.runner.state.status import Status


class Interrupted(KeyboardInterrupt):
    """A signal that cut short work of mlproject's own (an environment build): raised from the
    handler, so a wait on a lock, a download or a tool ends at once, cleaned up as Ctrl-C is."""


class Stopper:
    """Set by mlproject's signal handlers; backends poll it and stop their step."""

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


@dataclass(frozen=True)
class RunContext:
    run_id: str
    run_dir: Path
    cwd: str  # the project root: steps run there, as in MLflow
    env: Mapping[str, str]  # run-specific variables (MLPROJECT_RUN_ID, ...)
    stopper: Stopper


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


class Backend(Protocol):
    name: str

    def preflight(self, step: Step) -> list[str]:
        """Why the step cannot start here; empty when it can."""

    def run(self, step: Step, ctx: RunContext) -> Outcome: ...
