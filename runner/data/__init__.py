"""DVC-tracked inputs: pinned to a content hash at a Git revision, verified, materialized.

`pins` reads the pin straight from Git, `verify` checks the workspace copy against it (DVC's own
hashes, computed natively, cached by stat), `pull` brings the pinned version into place, and
`status` lists every declared input. `dvc` itself is imported only for remotes that are not a
local directory. The names below are loaded on first use, so that importing the package to
name a type costs nothing at start-up.
"""
from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "DataError": "pins", "DataPin": "pins", "pin_input": "pins", "pin_inputs": "pins",
    "workspace_path": "pins", "pull": "pull", "Row": "status", "data_status": "status",
    "render": "status", "rows_json": "status", "Status": "verify", "check": "verify",
    "require": "verify",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    # Importing a submodule binds its name here: `pull` the function must win over the module.
    globals()[name] = value
    return value
