"""The rows of `mlproject data status`: every declared input, its pin, and the workspace's state.

An input that cannot be pinned is a row with its error, not an exception: the command shows
everything that is wrong at once.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlproject.runner.data.pins import DataError, DataPin, Log, observe_input, quiet
from mlproject.runner.data.verify import Status, check
from mlproject.spec.model import DataInput


@dataclass(frozen=True)
class Row:
    name: str
    pin: DataPin | None
    status: Status | None
    error: str | None = None
    pending: str | None = None  # not pinned yet: what `data pull` (or `run`) would fetch

    @property
    def ok(self) -> bool:
        return self.status is not None and self.status.ok

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "pin": self.pin.to_json() if self.pin else None,
                "path": self.status.path if self.status else None,
                "state": self.status.state if self.status else
                "not fetched" if self.pending else "error", "pending": self.pending,
                "found": self.status.found if self.status else None, "error": self.error}


def data_status(root: str, inputs: Mapping[str, DataInput], log: Log = quiet) -> list[Row]:
    """Observed: nothing is cloned or fetched (an input of a repository not cloned yet is a row
    that says what `data pull` would fetch)."""
    rows = []
    for name, data in inputs.items():
        try:
            pin = observe_input(root, data)
            if isinstance(pin, str):
                rows.append(Row(name, None, None, pending=pin))
                continue
            rows.append(Row(name, pin, check(root, pin)))
        except DataError as exc:
            rows.append(Row(name, None, None, str(exc)))
    return rows


def rows_json(rows: list[Row]) -> list[dict[str, Any]]:
    return [row.to_json() for row in rows]


def render(rows: list[Row]) -> str:
    """A table for people: name, path, version, hash, state; errors below it."""
    if not rows:
        return "no data declared\n"
    table = [("NAME", "PATH", "VERSION", "MD5", "STATE")]
    for row in rows:
        if row.pin is None or row.status is None:
            table.append((row.name, "", "", "", "not fetched" if row.pending else "error"))
            continue
        version = f"{row.pin.rev or 'HEAD'}@{row.pin.sha[:8]}"
        if row.pin.repo:
            version = f"{row.pin.repo} {version}"
        state = row.status.state if row.status.ok or row.status.found is None else \
            f"differs (found {row.status.found[:12]})"
        table.append((row.name, row.status.path, version, row.pin.md5, state))
    widths = [max(len(line[i]) for line in table) for i in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) + "  " + line[4]
             for line in table]
    lines += [row.error for row in rows if row.error]
    lines += [f"{row.name}: {row.pending}" for row in rows if row.pending]
    return "\n".join(lines) + "\n"
