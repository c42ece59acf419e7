"""Tracking without a server: what a step's code logs with `from mlproject import log` (the
module in shim/, put on every step's PYTHONPATH by `step_variables`), read back into the run's
record when the step ends (read.py)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from mlproject.runner.tracking.read import Tracked, from_json, read, to_json

__all__ = ["SHIM", "Tracked", "from_json", "read", "step_variables", "to_json"]

# A directory holding only `mlproject/log/` and no `mlproject/__init__.py`: a portion of the
# `mlproject` namespace package, so that where the environment has mlproject installed too,
# both are seen (`mlproject.runner` from the installation, `mlproject.log` from either).
SHIM = Path(__file__).with_name("shim")


def step_variables(sets: Mapping[str, str], inherited: Mapping[str, str] | None = None,
                   shim: str | None = None) -> dict[str, str]:
    """PYTHONPATH for a step: the shim first, then what the step or the user set. `shim`: where
    the shim is seen by the step (inside a container, its mount point)."""
    env = {**(inherited if inherited is not None else os.environ), **sets}
    rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {"PYTHONPATH": os.pathsep.join([shim or str(SHIM), *rest])}
