"""What every environment kind provides: a recipe that knows its key and how to build itself."""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from mlproject.runner.util.hashing import canonical_digest

# Bumped when the layout of built environments changes: every key changes with it.
CACHE_FORMAT = 1
# The line `mlproject lock` writes into a lock: the digest of the input it was locked from.
INPUT_MARK = "# mlproject-input: sha256 "

Log = Callable[[str], None]


def normalize(name: str) -> str:
    """A package's name as PyPI compares them (PEP 503): `Typing_Extensions` is `typing-extensions`."""
    return re.sub(r"[-_.]+", "-", name).lower()


class EnvError(Exception):
    """An environment that cannot be resolved or built; the message says why and what to do."""


def env_key(kind: str, content: Mapping[str, Any]) -> str:
    """The key of an environment: a hash of what gets installed, never of raw file text."""
    return canonical_digest({"cache_format": CACHE_FORMAT, "kind": kind, **content})


class Recipe(Protocol):
    @property
    def kind(self) -> str:
        """"python" or "conda"."""

    @property
    def key(self) -> str:
        """env_key(...) of what gets installed."""

    def describe(self) -> dict[str, Any]:
        """JSON for the plan, the marker and the run record: interpreter, pins, lock files."""

    def build(self, prefix: Path, log: Log) -> None:
        """Create the environment at `prefix` (an empty directory). Raise EnvError on failure."""

    def unhealthy(self, prefix: Path) -> str | None:
        """Why a built environment can no longer be used (cheap: stats, no process), or None."""

    def activate(self, prefix: Path, env: Mapping[str, str]) -> dict[str, str]:
        """The variables that run a command inside the environment (PATH first of all)."""
