"""The kinds of environment a step can run in, shared by every module that names one, and the
registry that says, per kind, how it is observed (`plan`), acquired (`run`: a resolution made
now), rebuilt from a plan's data (on the machine that executes the plan), what a fingerprint
covers of it, and what it asks of a backend. Each kind's code is imported only when it is used."""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from mlproject.runner.envs.base import Log, Recipe
    from mlproject.spec.model import Environment


class EnvKind(str, Enum):
    """An environment's kind, as plans and records write it (the value)."""

    LOCAL = "local"  # the interpreter mlproject runs in, with what it has installed
    PYTHON = "python"  # a virtual environment built by uv from a lock
    CONDA = "conda"  # a conda environment installed from conda-lock.yml
    DOCKER = "docker"  # a container image

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Kind:
    """What mlproject knows how to do with one kind of environment.

    `module` (None: nothing is built, as for local or an image) provides
    `observed_recipe(root, env, log) -> Recipe | str`: reads, writes nothing; a str says what
    `run` would do to get the recipe (and how to do it ahead); `acquired_recipe(root, env, log)
    -> Recipe`: may resolve (and cache) what is missing; `plan_data(recipe) -> dict`: the recipe
    as plain JSON data; `decode_plan(data)`: that data checked
    and typed; `recipe_from_plan(data) -> Recipe`: that data made a recipe again, on the
    machine that executes the plan, refusing (EnvError) one where it would not be the same."""
    kind: EnvKind
    module: str | None
    covers: str  # what the fingerprint covers of it, in words ({name}, {detail} filled in)
    misses: tuple[str, ...] = ()  # what it does not cover, in words
    wraps: bool = False  # the command runs inside a wrapper (a container), not just with variables
    needs_containers: bool = False  # only a backend that runs containers can run it
    locker: str | None = None  # the module's function that writes its lock (`mlproject lock`)

    def _call(self, name: str, *args: Any) -> Any:
        assert self.module is not None
        return getattr(importlib.import_module(self.module), name)(*args)

    def observed_recipe(self, root: str, env: Environment, log: Log) -> Recipe | str | None:
        return None if self.module is None else self._call("observed_recipe", root, env, log)

    def acquired_recipe(self, root: str, env: Environment, log: Log) -> Recipe | None:
        return None if self.module is None else self._call("acquired_recipe", root, env, log)

    def plan_data(self, recipe: Recipe | None, env: Environment) -> dict[str, Any]:
        if self.module is None or recipe is None:
            # an image by name, or the build that makes one (its context is hashed by the backend)
            known = env.image or "build" in env.options
            return {"image": env.image, "options": dict(env.options)} if known else {}
        data: dict[str, Any] = self._call("plan_data", recipe)
        return data

    def check_data(self, data: Mapping[str, Any]) -> None:
        """Whether `data` has the shape of this kind's plan data (EnvError otherwise)."""
        if self.module is not None:
            self._call("decode_plan", data)

    def from_plan(self, data: Mapping[str, Any]) -> Recipe | None:
        return None if self.module is None else self._call("recipe_from_plan", data)

    def lock(self, root: str, env: Environment, log: Log) -> Path:
        """Resolve the environment's inputs into its lock file (`mlproject lock`); the file."""
        assert self.locker is not None, f"{self.kind} environments have no lock"
        written: Path = self._call(self.locker, root, env, log)
        return written

    def coverage(self, name: str, detail: str) -> str:
        return self.covers.format(name=name, detail=detail)


KINDS: dict[str, Kind] = {k.kind.value: k for k in (
    Kind(EnvKind.LOCAL, None, "environment (local {detail})",
         ("the files of installed distributions beyond name and version (an editable "
          "install's code)",)),
    Kind(EnvKind.PYTHON, "mlproject.runner.envs.python", "environment ({name}: its locked pins)",
         locker="write_lock"),
    Kind(EnvKind.CONDA, "mlproject.runner.envs.conda", "environment ({name}: its locked pins)",
         locker="lock_conda"),
    Kind(EnvKind.DOCKER, None, "environment ({name}: image {detail} by name)",
         ("the image's content (a tag can move)",), wraps=True, needs_containers=True),
)}


def kind(name: str) -> Kind:
    """The registry's entry for a kind; an unknown one (a newer plan file) is a clear error."""
    found = KINDS.get(str(name))
    if found is None:
        from mlproject.runner.envs.base import EnvError

        raise EnvError(f"unknown environment kind {name!r} (known: {', '.join(KINDS)})")
    return found


def names() -> list[str]:
    return list(KINDS)

