"""Run records: one directory per run under `.mlproject/runs/`, its `run.json` written atomically.

A record is written when the run starts (status `running`) and again when it ends, so a run that
fails, is interrupted or times out leaves a complete record; one left `running` by an mlproject
that was killed is reported as `crashed` when read.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

from mlproject.spec.cache import write_atomic

RECORD_FORMAT = "mlproject.run/1"
STATUSES = ("running", "succeeded", "failed", "interrupted", "timeout", "crashed")
_GITIGNORE = "# written by mlproject: run records and caches stay out of Git\n*\n"


def state_dir(root: str) -> Path:
    return Path(root) / ".mlproject"


def runs_dir(root: str) -> Path:
    return state_dir(root) / "runs"


def ensure_state_dir(root: str) -> Path:
    state = state_dir(root)
    (state / "runs").mkdir(parents=True, exist_ok=True)
    ignore = state / ".gitignore"
    if not ignore.exists():
        write_atomic(ignore, _GITIGNORE)
    return state


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def new_run_dir(root: str) -> tuple[str, Path]:
    """A fresh run directory whose name sorts by start time; unique even under concurrency."""
    base = ensure_state_dir(root) / "runs"
    while True:
        run_id = now().strftime("%Y%m%d-%H%M%S-%f") + "-" + os.urandom(3).hex()
        path = base / run_id
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return run_id, path


def process_start(pid: int) -> str | None:
    """The start time of a process in clock ticks since boot, which tells a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode(errors="replace")
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    if fields[0] in ("Z", "X"):  # a zombie has ended: PID 1 here does not always reap it
        return None
    return fields[19]


def host_info() -> dict[str, Any]:
    pid = os.getpid()
    system = os.uname()
    return {"hostname": system.nodename, "pid": pid, "pid_start": process_start(pid),
            "platform": f"{system.sysname}-{system.release}-{system.machine}",
            "python": ".".join(map(str, sys.version_info[:3]))}


def write(run_dir: Path, record: dict[str, Any]) -> None:
    write_atomic(run_dir / "run.json", json.dumps(record, indent=2, sort_keys=False) + "\n")


def effective_status(record: dict[str, Any]) -> str:
    """`crashed` for a record left `running` by an mlproject process that no longer exists."""
    status = str(record.get("status", "crashed"))
    if status != "running":
        return status
    host = record.get("host") or {}
    if host.get("hostname") != os.uname().nodename:
        return status  # another machine's run: we cannot tell
    pid = host.get("pid")
    alive = isinstance(pid, int) and process_start(pid) == host.get("pid_start")
    return status if alive else "crashed"


def read(run_dir: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    record["status"] = effective_status(record)
    return record


def list_runs(root: str) -> list[dict[str, Any]]:
    """Every readable record of the project, oldest first. A directory without a readable
    run.json (an mlproject killed before its first write) is shown as crashed."""
    base = runs_dir(root)
    if not base.is_dir():
        return []
    found = []
    for run_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        record = read(run_dir)
        found.append(record or {"id": run_dir.name, "status": "crashed", "entry_point": None,
                                "duration": None, "metrics": {}})
    return found


def find(root: str, run_id: str) -> dict[str, Any] | None:
    """A run by its id or by a unique prefix of it; None when there is none or several."""
    base = runs_dir(root)
    if not base.is_dir():
        return None
    exact = base / run_id
    if exact.is_dir():
        return read(exact)
    matches = [p for p in base.iterdir() if p.name.startswith(run_id)]
    return read(matches[0]) if len(matches) == 1 else None
