"""The world a step needs, made real right before it runs: its environment built (or reused) and
held, its pinned data verified (pulled first with --pull)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlproject.runner.envs.base import EnvError
from mlproject.runner.envs.recipes import EnvFact
from mlproject.runner.envs.store import Hold
from mlproject.runner.plan import Plan, Step
from mlproject.runner.util.console import say

if TYPE_CHECKING:
    from mlproject.runner.data.pins import DataPin


def check_data(plan: Plan, pins: Mapping[str, DataPin], pull: bool) -> list[str]:
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


def data_changed(plan: Plan, step: Step, pins: Mapping[str, DataPin]) -> str | None:
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


def environment(fact: EnvFact | None) -> Realized:
    """Build (or reuse) the step's environment and hold it."""
    from mlproject.runner.envs.store import EnvStore, Hold

    if fact is None or fact.recipe is None:
        return Realized({}, Hold(None))
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
    return Realized(fact.recipe.activate(prefix, os.environ), hold, str(prefix), built,
                    fact.recipe.describe())
