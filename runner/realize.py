"""The world a step needs, made real right before it runs: its environment built (or reused) and
held, its pinned data verified (pulled first with --pull)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlproject.runner.envs.base import EnvError
from mlproject.runner.envs.recipes import EnvFact
from mlproject.runner.plan import Plan, Step
from mlproject.runner.util.console import say

if TYPE_CHECKING:
    from mlproject.runner.data.pins import DataPin
    from mlproject.runner.envs.store import Hold


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


def environment(fact: EnvFact | None, record: dict[str, Any]) -> tuple[dict[str, str], Hold]:
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
