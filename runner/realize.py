"""The world a step needs, made real right before it runs: its environment built (or reused) and
held, its pinned data verified (pulled first with --pull). Everything comes from the plan: the
recipe is rebuilt from the step's environment data by its kind (envs/kinds.py), the pins are the
step's own."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlproject.runner.envs.base import EnvError
from mlproject.runner.envs.store import Hold
from mlproject.runner.plan import Plan, Step
from mlproject.runner.util.console import say


def check_data(plan: Plan, pull: bool) -> list[str]:
    """Every pinned input the steps read must match its pin (pulled first with --pull)."""
    used = list({pin.name: pin for s in plan.steps for pin in s.pins()}.values())
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


def data_changed(plan: Plan, step: Step) -> str | None:
    """Why the pinned data `step` reads no longer matches its pin, checked right before it runs
    (a step before it may have written over it), or None. Never pulled here: what an earlier
    step wrote is not overwritten behind the user's back."""
    used = step.pins()
    if not used:
        return None
    from mlproject.runner.data.pins import DataError
    from mlproject.runner.data.verify import require

    try:
        require(plan.project, used)
    except DataError as exc:
        return f"pinned data changed during the run, before this step started:\n{exc}"
    return None


@dataclass(frozen=True)
class Realized:
    """A step's environment, made real: what runs a command inside it, and the hold on it that
    keeps `env prune` away until `hold.release()` (the step ended)."""
    activation: Mapping[str, str]  # variables that run a command inside it (PATH first of all)
    hold: Hold
    prefix: str | None = None  # where it is built; None: nothing is built (local, an image)
    built_now: bool = False
    recipe: Mapping[str, Any] | None = None  # what was installed (Recipe.describe())
    wrapper: tuple[str, ...] = ()  # argv put before the command (a kind that wraps: a container)

    def wrap(self, argv: list[str]) -> list[str]:
        return [*self.wrapper, *argv]


def unbuilt() -> Realized:
    """Nothing built here: a local interpreter, an image, or a worker that builds it itself."""
    from mlproject.runner.envs.store import Hold

    return Realized({}, Hold(None))


def environment(step: Step) -> Realized:
    """Build (or reuse) the step's environment, from the plan's data alone, and hold it.
    EnvError: it cannot be built here (an interpreter of another version, another platform)."""
    from mlproject.runner.envs.kinds import kind
    from mlproject.runner.envs.store import EnvStore

    choice = step.environment
    if choice.pending:  # `run` acquires before it executes: a plan that did not is a bug
        raise EnvError(f"not known yet: {choice.pending}")
    entry = kind(choice.kind)
    if entry.module is not None and not choice.data:  # never fall back to the local interpreter
        raise EnvError("the plan holds no recipe for it: make the plan again")
    recipe = entry.from_plan(choice.data) if choice.data else None
    if recipe is None:
        return unbuilt()
    store = EnvStore()
    hold = store.hold(recipe.key, say)  # before the check: nothing prunes it after that
    try:
        prefix, built = store.ensure(recipe, say)
        # Right before the step: a step never falls through to the next `python` on PATH.
        problem = store.problem(recipe)
        if problem is not None:
            raise EnvError(f"{prefix} cannot be used: {problem}")
    except BaseException:
        hold.release()
        raise
    return Realized(recipe.activate(prefix, os.environ), hold, str(prefix), built,
                    recipe.describe())
