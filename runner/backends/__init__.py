"""Backends by name: the one registry the CLI's choices and execute read. Each backend lives in
its own module, imported only when it is used (this module imports nothing, so that building
the CLI's parser stays fast)."""
from __future__ import annotations

import importlib
from collections.abc import Callable

TYPE_CHECKING = False  # not `typing`'s: building the parser must not import typing (~5 ms)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from mlproject.runner.backends.base import Backend
    from mlproject.runner.backends.settings import Setting

Factory = Callable[..., "Backend"]  # called with the settings, or with nothing

# name -> "module:attribute" of a class or function that makes one, or a factory itself
_REGISTRY: dict[str, str | Factory] = {
    "local": "mlproject.runner.backends.local.backend:LocalBackend",
    "docker": "mlproject.runner.backends.docker.backend:DockerBackend",
    "slurm": "mlproject.runner.backends.slurm.backend:SlurmBackend",
    "kubernetes": "mlproject.runner.backends.kubernetes.backend:KubernetesBackend",
    "ray": "mlproject.runner.backends.ray.backend:RayBackend",
}


class UnknownBackend(KeyError):
    pass


def names() -> list[str]:
    return list(_REGISTRY)


def register(name: str, factory: Factory | str) -> None:
    """Add a backend (a plugin, or a test's fake); a name already taken is refused."""
    if name in _REGISTRY:
        raise ValueError(f"a backend named {name!r} is already registered")
    _REGISTRY[name] = factory


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def _factory(name: str) -> Factory:
    try:
        entry = _REGISTRY[name]
    except KeyError:
        raise UnknownBackend(f"unknown backend {name!r} (known: {', '.join(_REGISTRY)})") from None
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        entry = getattr(importlib.import_module(module), attr)
    return entry


def get(name: str, settings: Mapping[str, Any] | None = None) -> Backend:
    """A backend made with `settings` (already checked by settings.load); a backend that takes
    none is made with nothing."""
    factory = _factory(name)
    backend: Backend = factory(settings) if settings else factory()
    return backend


def settings_of(name: str) -> Mapping[str, Setting]:
    """The settings the backend `name` takes (its class's SETTINGS), read without making one;
    none for a factory that declares none (a test's fake)."""
    declared: Mapping[str, Setting] = getattr(_factory(name), "SETTINGS", None) or {}
    return declared
