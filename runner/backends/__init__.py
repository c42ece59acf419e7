"""Backends by name: the one registry the CLI's choices and execute read. Each backend lives in
its own module, imported only when it is used (this module imports nothing, so that building
the CLI's parser stays fast)."""
from __future__ import annotations

import importlib
from collections.abc import Callable

TYPE_CHECKING = False  # not `typing`'s: building the parser must not import typing (~5 ms)
if TYPE_CHECKING:
    from mlproject.runner.backends.base import Backend

Factory = Callable[[], "Backend"]

# name -> "module:attribute" of a class or function that makes one, or a factory itself
_REGISTRY: dict[str, str | Factory] = {
    "local": "mlproject.runner.backends.local.backend:LocalBackend",
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


def get(name: str) -> Backend:
    try:
        entry = _REGISTRY[name]
    except KeyError:
        raise UnknownBackend(f"unknown backend {name!r} (known: {', '.join(_REGISTRY)})") from None
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        entry = getattr(importlib.import_module(module), attr)
    backend: Backend = entry()
    return backend
