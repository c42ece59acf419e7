"""Run records: one directory per run under `.mlproject/runs/`, its `run.json` written atomically.

A record is written when the run starts (status `running`) and again when it ends, so a run that
fails, is interrupted or times out leaves a complete record; one left `running` by an mlproject
that was killed is reported as `crashed` when read.
"""
from __future__ import annotations

import datetime as dt
import errno
import json
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlproject.runner.util.files import write_atomic

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


# A record is read back by `runs`, `runs show` and the up-to-date check; whatever is in the
# file (a torn write, an edit, another tool's JSON), what is read is of this shape or reported.
# Keys not named here are kept as they are (records of newer versions may carry more).
_NUMBER = (int, float)
_FIELDS: dict[str, tuple[type, ...]] = {
    "format": (str,), "invocation": (str,), "project": (str,), "spec": (str,),
    "spec_digest": (str,), "name": (str,), "entry_point": (str,), "started_at": (str,),
    "ended_at": (str,), "duration": _NUMBER, "exit_code": (int,), "signal": (int,),
    "reason": (str,), "backend": (str,), "command": (str,), "fingerprint": (str,),
    "metrics_file": (str,), "metrics_error": (str,), "log": (str,),
    "parameters": (dict,), "code": (dict,), "environment": (dict,), "resources": (dict,),
    "data": (dict,), "metrics": (dict,), "outputs": (dict,), "plan": (dict,), "host": (dict,),
    "mlproject_version": (str,),
}
MAX_RECORD_BYTES = 64 << 20  # a record is a few KiB; the plan of thousands of steps fits


def problem_of(record: Any, run_id: str) -> str | None:
    """Why `record` (run.json of the run directory `run_id`, parsed) is not a run record."""
    if not isinstance(record, dict):
        return f"holds {_kind(record)}, not a record (a JSON object)"
    if record.get("id") != run_id:
        if "id" not in record:
            return "has no id"
        return f"has id {_shown_value(record['id'])}, which is not its directory's name"
    if record.get("status") not in STATUSES:
        return (f"has status {_shown_value(record.get('status'))}, not one of "
                f"{', '.join(STATUSES)}")
    for key, types in _FIELDS.items():
        value = record.get(key)
        if value is not None and (not isinstance(value, types) or isinstance(value, bool)
                                  or (types is _NUMBER and not _finite(value))):
            return f"has {key} {_shown_value(value)}, not {_kind_of(types)}"
    for name, value in record.get("metrics", {}).items():
        if not _finite(value):
            return f"has metric {_shown_value(name)} = {_shown_value(value)}, not a finite number"
    return None


def _finite(value: Any) -> bool:
    """A number that every reader can format and compare: no bool, NaN, infinity, or an int
    beyond a float's range."""
    if not isinstance(value, _NUMBER) or isinstance(value, bool):
        return False
    try:
        return abs(float(value)) < float("inf")
    except OverflowError:
        return False


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _kind_of(types: tuple[type, ...]) -> str:
    names: dict[tuple[type, ...], str] = {(str,): "a string", (dict,): "an object",
                                          (int,): "an integer"}
    return names.get(types, "a finite number")


def _shown_value(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class Loaded:
    """What a run directory holds: its record, or why it has none that can be used."""
    id: str
    record: dict[str, Any] | None
    problem: str | None = None  # None with no record: run.json was never written

    def row(self) -> dict[str, Any]:
        """The record, or a stand-in that says what is wrong, for lists."""
        if self.record is not None:
            return self.record
        if self.problem is None:  # mlproject killed before its first write
            return {"id": self.id, "status": "crashed", "entry_point": None, "duration": None,
                    "metrics": {}}
        return {"id": self.id, "status": "corrupt", "entry_point": None, "duration": None,
                "metrics": {}, "problem": self.problem}


def load(run_dir: Path) -> Loaded:
    """The record of a run directory, checked; never raises, never blocks (a FIFO is refused)."""
    from mlproject.runner.util.hashing import shown

    run_id = run_dir.name
    try:
        fd = os.open(run_dir / "run.json", os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW
                     | os.O_CLOEXEC)
    except FileNotFoundError:
        return Loaded(run_id, None)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return Loaded(run_id, None, "run.json is a symbolic link, not a record mlproject wrote")
        return Loaded(run_id, None, f"run.json cannot be read: {exc.strerror}")
    try:
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return Loaded(run_id, None, "run.json is not a regular file")
            data = handle.read(MAX_RECORD_BYTES + 1)
    except OSError as exc:
        return Loaded(run_id, None, f"run.json cannot be read: {exc.strerror}")
    if len(data) > MAX_RECORD_BYTES:
        return Loaded(run_id, None, f"run.json is larger than {MAX_RECORD_BYTES >> 20} MiB")
    try:
        record = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return Loaded(run_id, None, f"run.json is not UTF-8 (byte 0x{data[exc.start]:02x} at "
                                    f"offset {exc.start})")
    except RecursionError:
        return Loaded(run_id, None, "run.json is nested too deeply")
    except ValueError as exc:
        return Loaded(run_id, None, f"run.json is not valid JSON: {shown(str(exc))}")
    problem = problem_of(record, run_id)
    if problem is not None:
        return Loaded(run_id, None, f"run.json {problem}")
    record["status"] = effective_status(record)
    return Loaded(run_id, record)


def read(run_dir: Path) -> dict[str, Any] | None:
    """The record of a run directory, or None when it has none of the right shape."""
    return load(run_dir).record


def _run_dirs(base: Path) -> list[Path]:
    """The run directories, by name (which sorts by start time); links and hidden entries are
    none of mlproject's."""
    try:
        entries = list(base.iterdir())
    except OSError:
        return []
    return sorted(p for p in entries if not p.name.startswith(".") and not p.is_symlink()
                  and p.is_dir())


def list_runs(root: str) -> list[dict[str, Any]]:
    """Every run of the project, oldest first. A directory without run.json (an mlproject
    killed before its first write) is shown as crashed; one whose run.json cannot be used, as
    corrupt with its `problem`: neither hides the others."""
    return [load(run_dir).row() for run_dir in _run_dirs(runs_dir(root))]


@dataclass(frozen=True)
class Lookup:
    """A run asked for by id or prefix: the one found, or the candidates of an ambiguous prefix."""
    found: Loaded | None
    candidates: tuple[str, ...] = ()
    problem: str | None = None  # the id cannot name a run at all


def lookup(root: str, run_id: str) -> Lookup:
    """A run by its id or by a unique prefix of it; nothing outside the runs directory is read
    whatever the id holds (`/`, `..`)."""
    if not run_id or run_id.startswith(".") or "/" in run_id or "\0" in run_id:
        return Lookup(None, problem="a run id is a name in the runs directory, without '/' and "
                                    "not starting with '.'")
    exact = runs_dir(root) / run_id
    if exact.is_dir() and not exact.is_symlink():  # the up-to-date check's case: no listing
        return Lookup(load(exact))
    matches = [p for p in _run_dirs(runs_dir(root)) if p.name.startswith(run_id)]
    if len(matches) == 1:
        return Lookup(load(matches[0]))
    return Lookup(None, tuple(p.name for p in matches))


def record_of(root: str, run_id: str) -> dict[str, Any] | None:
    """A run's checked record by its id or a unique prefix of it; None when there is none, it
    is unusable, or the prefix names several."""
    found = lookup(root, run_id).found
    return found.record if found else None
