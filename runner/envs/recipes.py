"""From a declared environment to the recipe that builds it, whatever its kind.

Messages of an EnvError never name the environment: whoever shows one says which it is."""
from __future__ import annotations

from dataclasses import dataclass

from mlproject.runner.envs.base import EnvError, Log, Recipe
from mlproject.spec.model import Environment


@dataclass(frozen=True)
class EnvFact:
    """What is known of a declared environment before anything runs."""
    name: str
    kind: str
    recipe: Recipe | None  # None: not resolvable here (unlocked under `plan`, or an error)
    ready: bool
    detail: str
    error: str | None = None


def recipe_for(root: str, env: Environment, *, allow_resolve: bool, log: Log) -> Recipe | None:
    if env.kind == "python":
        from mlproject.runner.envs import python

        return python.recipe(root, env, allow_resolve=allow_resolve, log=log)
    if env.kind == "conda":
        from mlproject.runner.envs import conda

        found, warnings = conda.conda_recipe(root, env)
        for warning in warnings:
            log(f"warning: {warning}")
        return found
    raise EnvError(f"no recipe for kind {env.kind!r}")


def gather(root: str, env: Environment, *, allow_resolve: bool, log: Log) -> EnvFact:
    from mlproject.runner.envs.store import EnvStore

    detail = str(env.image or env.file or f"python {env.python}")
    if env.kind == "docker":  # a backend's business (the local one refuses it at run time)
        return EnvFact(env.name, env.kind, None, False, detail)
    try:
        found = recipe_for(root, env, allow_resolve=allow_resolve, log=log)
    except EnvError as exc:
        return EnvFact(env.name, env.kind, None, False, detail, str(exc))
    except OSError as exc:  # the cache cannot be written (a resolution is stored there)
        return EnvFact(env.name, env.kind, None, False, detail,
                       f"{exc.filename or 'the cache'}: {exc.strerror or exc}")
    if found is None:
        return EnvFact(env.name, env.kind, None, False, f"{detail}; not locked: resolved when run")
    for warning in getattr(found, "warnings", ()):
        log(f"warning: {warning}")
    ready = EnvStore().problem(found) is None
    return EnvFact(env.name, env.kind, found, ready, detail)
