"""The runs' index: one line of facts per run (`Row`), so that `mlproject runs`, its filters and
a sweep's table read one file instead of every record (10,000 records are ~40 MB of JSON, each
checked against the schema: seconds; the index is ~3 MB: milliseconds).

The records stay the truth. The index (`.mlproject/runs-index.json`) keeps, for each run, the
stamp of the run.json it was made from (modification time, size and inode: a record is only
ever replaced whole, by a rename, so any write changes the inode) and the row. Each read lists
the run directories and stats each run.json; a run whose stamp differs, or that is new, is read
again from its record; a run whose directory is gone is dropped. So an index that is stale,
torn, edited, of another format or deleted is healed by the next read, and a wrong row can only
live as long as its record is untouched. When anything changed the index is rewritten
atomically (a read-only project is read, and its index not written).

A row's status is the record's as read then; a run that was running or queued is asked again
on every read whether its writer still lives (records.status_now), as reading the record
would."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mlproject.runner.state import records
from mlproject.runner.state.status import Status
from mlproject.runner.util.files import write_atomic

INDEX = "runs-index.json"
FORMAT = "mlproject.runs-index/1"
Row = dict[str, Any]
# the row's fields `runs --json` shows; the others are the index's own
SHOWN = ("id", "entry_point", "status", "started_at", "ended_at", "duration", "exit_code",
         "reason", "backend", "parameters", "metrics", "fingerprint", "sweep")
_LIVE = (Status.RUNNING.value, Status.QUEUED.value)


def path(root: str) -> Path:
    return records.state_dir(root) / INDEX


def row_of(loaded: records.Loaded) -> Row:
    """The facts of one run directory that lists and filters need."""
    record = loaded.record
    if record is None:
        row: Row = {"id": loaded.id, "status": loaded.status, "entry_point": None,
                    "started_at": None, "ended_at": None, "duration": None, "exit_code": None,
                    "reason": None, "backend": None, "parameters": {}, "metrics": {},
                    "fingerprint": None, "sweep": None}
        if loaded.problem is not None:
            row["problem"] = loaded.problem
        return row
    handle = record.handle or {}
    row = {
        "id": loaded.id, "status": record.status.value, "entry_point": record.entry_point,
        "started_at": record.started_at, "ended_at": record.ended_at,
        "duration": record.duration, "exit_code": record.exit_code, "reason": record.reason,
        "backend": record.backend, "parameters": dict(record.parameters),
        "metrics": dict(record.metrics), "fingerprint": record.fingerprint,
        "sweep": None if record.sweep is None else dict(record.sweep),
    }
    if record.status.value in _LIVE:  # whether its writer lives is asked on every read
        row["host"] = [record.host.hostname, record.host.pid, record.host.pid_start]
        row["handle_backend"] = handle.get("backend") if record.handle is not None else None
    return row


def _stamp(run_json: str) -> list[int] | None:
    try:
        info = os.lstat(run_json)
    except OSError:
        return None
    return [info.st_mtime_ns, info.st_size, info.st_ino]


def _read(root: str) -> dict[str, Any]:
    try:
        with open(path(root), "rb") as handle:
            data = json.loads(handle.read())
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return {}
    runs = data.get("runs")
    return runs if isinstance(runs, dict) else {}


def _fits(entry: Any, run_id: str) -> bool:
    """An entry of the right shape for its run (a hand-edited index is healed, not trusted)."""
    if not isinstance(entry, dict):
        return False
    row = entry.get("row")
    return (isinstance(row, dict) and row.get("id") == run_id and isinstance(entry.get("stamp"),
                                                                             (list, type(None)))
            and isinstance(row.get("status"), str) and isinstance(row.get("metrics"), dict)
            and isinstance(row.get("parameters"), dict))


def rows(root: str) -> list[Row]:
    """Every run's row, oldest first, from the index healed against the run directories."""
    base = records.runs_dir(root)
    known = _read(root)
    fresh: dict[str, Any] = {}
    changed = False
    prefix = f"{base}{os.sep}"
    for run_id in records.run_names(base):
        stamp = _stamp(f"{prefix}{run_id}{os.sep}run.json")
        entry = known.get(run_id)
        if stamp is not None and isinstance(entry, dict) and _fits(entry, run_id) and (
                entry["stamp"] == stamp):
            fresh[run_id] = entry
            continue
        fresh[run_id] = {"stamp": stamp, "row": row_of(records.load(base / run_id))}
        # a directory without run.json yet is a run starting: never kept as crashed
        changed = changed or stamp is not None
    changed = changed or any(run_id not in fresh for run_id in known)
    if changed:
        try:
            write_atomic(path(root), json.dumps({"format": FORMAT, "runs": {
                k: v for k, v in fresh.items() if v["stamp"] is not None}},
                separators=(",", ":")))
        except OSError:
            pass  # read-only, or full: the next read makes it again
    out = []
    for entry in fresh.values():
        row = entry["row"]
        if row["status"] in _LIVE and isinstance(row.get("host"), list):
            status = records.status_now(Status(row["status"]), row.get("backend") or "",
                                        row.get("handle_backend"), *row["host"])
            row = {**row, "status": status.value}
        out.append(row)
    return out


def shown(row: Row) -> Row:
    """The row as `runs --json` prints it."""
    out = {key: row.get(key) for key in SHOWN}
    if "problem" in row:
        out["problem"] = row["problem"]
    return out
