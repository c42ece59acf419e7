"""DVC-tracked inputs: pinned to a content hash at a Git revision, verified, materialized.

`pins` reads the pin straight from Git, `verify` checks the workspace copy against it (DVC's own
hashes, computed natively, cached by stat), `pull` brings the pinned version into place, and
`status` lists every declared input. `dvc` itself is imported only for remotes that are not a
local directory.
"""
from __future__ import annotations

from mlproject.runner.data.pins import DataError, Pin, resolve, resolve_all, workspace_path
from mlproject.runner.data.pull import pull
from mlproject.runner.data.status import Row, data_status, render, rows_json
from mlproject.runner.data.verify import Status, check, require

__all__ = [
    "DataError", "Pin", "Row", "Status", "check", "data_status", "pull", "render", "require",
    "resolve", "resolve_all", "rows_json", "workspace_path",
]
