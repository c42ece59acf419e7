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


def observe(root: str, env: Environment, log: Log, manager: str | None = None) -> EnvFact:
    """What the project and the cache say of `env` now; nothing is resolved, built or written.
    `manager`: --env-manager (uv or virtualenv: a conda file is built as a uv environment;
    conda: never)."""
    return _fact(root, env, log, acquire=False, manager=manager)


def acquire(root: str, env: Environment, log: Log, translated: bool = False) -> EnvFact:
    """`observe`, then what it left pending done: an unlocked environment resolved (and cached).
    `translated`: observed as a conda file built as a uv environment, and acquired as one."""
    return _fact(root, env, log, acquire=True, manager="uv" if translated else None)


def _fact(root: str, env: Environment, log: Log, *, acquire: bool,
          manager: str | None = None) -> EnvFact:
    from mlproject.runner.envs import condatranslate

    detail = str(env.image or env.file or f"python {env.python}")
    entry = kind(env.kind)
    if manager == "conda" and env.kind == "python":
        return EnvFact(env.name, env.kind, None, False, detail, "--env-manager conda: it is a "
                       "Python environment (python_env or requirements), not a conda one; use "
                       "--env-manager virtualenv, uv or local (as mlflow run refuses it too)")
    if condatranslate.wanted(root, env, manager):
        from mlproject.runner.envs import python

        entry, detail = kind("python"), f"{detail}, translated for uv"
        try:
            found: Recipe | str | None = python.translated_recipe(root, env, log, resolve=acquire)
            if manager not in ("uv", "virtualenv"):
                log(f"{env.file}: no conda-lock.yml and no conda: built as a uv environment from "
                    "its pip-translatable dependencies")
        except EnvError as exc:
            return EnvFact(env.name, "python", None, False, detail, str(exc))
        except OSError as exc:
            return EnvFact(env.name, "python", None, False, detail,
                           f"{exc.filename or 'the cache'}: {exc.strerror or exc}")
        return _found(env, entry, found, detail, log)
    try:
        found = (entry.acquired_recipe if acquire else entry.observed_recipe)(root, env, log)
    except EnvError as exc:
        return EnvFact(env.name, env.kind, None, False, detail, str(exc))
    except OSError as exc:  # the cache cannot be written (a resolution is stored there)
        return EnvFact(env.name, env.kind, None, False, detail,
                       f"{exc.filename or 'the cache'}: {exc.strerror or exc}")
    return _found(env, entry, found, detail, log)


def _found(env: Environment, entry: Any, found: Recipe | str | None, detail: str,
           log: Log) -> EnvFact:
    from mlproject.runner.envs.store import EnvStore

    if isinstance(found, str):
        return EnvFact(env.name, entry.kind.value, None, False, f"{detail}; not locked",
                       pending=found)
    if found is None:  # nothing is built: a backend's business (an image)
        return EnvFact(env.name, entry.kind.value, None, False, detail,
                       data=entry.plan_data(None, env))
    for warning in getattr(found, "warnings", ()):
        log(f"warning: {warning}")
    ready = EnvStore().problem(found) is None
    return EnvFact(env.name, entry.kind.value, found, ready, detail,
                   data=entry.plan_data(found, env))
