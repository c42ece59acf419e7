"""The optional parts of mlproject, installed as pip extras: whether one is there, and the words
that say how to get it.

The core install covers the common path (local runs, uv environments, conda environments from a
lock, DVC pins with a local remote, read natively). DVC's API, for other remotes, and conda-lock,
the solver behind `mlproject lock` for conda, weigh ten times the rest together, so each is an
extra: `mlproject[dvc]`, `mlproject[conda]`, or `mlproject[all]`.
"""
from __future__ import annotations

import importlib.util

# extra -> the module it brings, looked for without being imported (importing DVC takes 0.5 s)
MODULES = {"dvc": "dvc", "conda": "conda_lock"}


class MissingExtra(Exception):
    """Mixed into an area's own error type where a feature needs an extra that is not installed:
    nothing was attempted, so the verb exits 2 (like a usage error), with the install line."""


def importable(module: str) -> bool:
    """Whether a top-level module can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken install, or a module set to None in sys.modules
        return False


def has_extra(extra: str) -> bool:
    """Whether the extra's module can be imported, without importing it."""
    return importable(MODULES[extra])


def install_line(extra: str, *more: str) -> str:
    """The command that installs the extra (and `more`, such as a DVC plugin for a scheme)."""
    return "pip install " + " ".join(f"'{r}'" for r in (f"mlproject[{extra}]", *more))
