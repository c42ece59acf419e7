"""Backends by name. Each lives in its own module, imported only when it is used."""
from __future__ import annotations

import importlib

from mlproject.runner.backends.base import Backend

_REGISTRY = {
    "local": ("mlproject.runner.backends.local.backend", "LocalBackend"),
}


def names() -> list[str]:
    return list(_REGISTRY)


def get(name: str) -> Backend:
    module, attr = _REGISTRY[name]
    backend: Backend = getattr(importlib.import_module(module), attr)()
    return backend
