"""From a declared environment to what is known of it, whatever its kind (see kinds.KINDS):
observed (`plan`: read only) or acquired (`run`: an unlocked environment resolved now).

Messages of an EnvError never name the environment: whoever shows one says which it is."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlproject.runner.envs.base import EnvError, Log, Recipe
from mlproject.runner.envs.kinds import kind
from mlproject.spec.model import Environment


@dataclass(frozen=True)
class EnvFact:
    """What is known of a declared environment before anything runs."""
    name: str
    kind: str
    recipe: Recipe | None  # None: nothing to build (an image), not known yet, or an error
    ready: bool
    detail: str
    error: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)  # the recipe as plan data
    pending: str | None = None  # what `run` would do to know it (and how to do it ahead)


def acquired_recipe(root: str, env: Environment, log: Log) -> Recipe | None:
    """The recipe of a declared environment, resolving what must be (None: nothing is built)."""
    return kind(env.kind).acquired_recipe(root, env, log)


def observe(root: str, env: Environment, log: Log) -> EnvFact:
    """What the project and the cache say of `env` now; nothing is resolved, built or written."""
    return _fact(root, env, log, acquire=False)


def acquire(root: str, env: Environment, log: Log) -> EnvFact:
    """`observe`, then what it left pending done: an unlocked environment resolved (and cached)."""
    return _fact(root, env, log, acquire=True)


def _fact(root: str, env: Environment, log: Log, *, acquire: bool) -> EnvFact:
    from mlproject.runner.envs.store import EnvStore

    detail = str(env.image or env.file or f"python {env.python}")
    entry = kind(env.kind)
    try:
        found = (entry.acquired_recipe if acquire else entry.observed_recipe)(root, env, log)
    except EnvError as exc:
        return EnvFact(env.name, env.kind, None, False, detail, str(exc))
    except OSError as exc:  # the cache cannot be written (a resolution is stored there)
        return EnvFact(env.name, env.kind, None, False, detail,
                       f"{exc.filename or 'the cache'}: {exc.strerror or exc}")
    if isinstance(found, str):
        return EnvFact(env.name, env.kind, None, False, f"{detail}; not locked", pending=found)
    if found is None:  # nothing is built: a backend's business (an image)
        return EnvFact(env.name, env.kind, None, False, detail, data=entry.plan_data(None, env))
    for warning in getattr(found, "warnings", ()):
        log(f"warning: {warning}")
    ready = EnvStore().problem(found) is None
    return EnvFact(env.name, env.kind, found, ready, detail, data=entry.plan_data(found, env))
