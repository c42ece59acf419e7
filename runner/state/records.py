"""Run records: one directory per run under `.mlproject/runs/`, its `run.json` written atomically.

A record (a RunRecord, record.py) is written when the run starts (status `running`) and again
when it ends, so a run that fails, is interrupted or times out leaves a complete record; one left
`running` by an mlproject that was killed is reported as `crashed` when read. Whatever is in the
file (a torn write, an edit, another tool's JSON), what is read is a record that fits the
published schema, or the reason it is none.
"""
from __future__ import annotations

import datetime as dt
import errno
import json
import os
import stat
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mlproject.runner.state.record import RECORD_FORMAT as RECORD_FORMAT  # re-exported
from mlproject.runner.state.record import Host, RunRecord, from_json
from mlproject.runner.state.record import problem_of as record_problem
from mlproject.runner.state.schemacheck import shown_value
from mlproject.runner.state.status import Status
from mlproject.runner.util.files import write_atomic

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


def host_info() -> Host:
    pid = os.getpid()
    system = os.uname()
    return Host(system.nodename, pid, process_start(pid),
                f"{system.sysname}-{system.release}-{system.machine}",
                ".".join(map(str, sys.version_info[:3])))


def write(run_dir: Path, record: RunRecord) -> None:
    # one line: json's C encoder (an indented dump takes its pure-Python one, ~10 times slower:
    # ~3 ms a record, three times a step, which a 1,000-point sweep pays 3,000 times);
    # `runs show --json` prints it indented
    write_atomic(run_dir / "run.json", json.dumps(record.to_json(), separators=(",", ":"))
                 + "\n")


CANCEL_MARKER = "cancel"  # in a run directory: `mlproject cancel` asked for the step to stop


def request_cancel(run_dir: Path) -> None:
    """Ask whoever supervises the run to cancel it (a file, so that it works for a supervisor
    in another process, and for a step that has not started yet: it never starts)."""
    write_atomic(run_dir / CANCEL_MARKER, f"{now().isoformat()}\n")


def cancel_requested(run_dir: Path) -> bool:
    return os.path.exists(run_dir / CANCEL_MARKER)


def effective_status(record: RunRecord) -> Status:
    """`crashed` for a record left `running` (or `queued`) by an mlproject process that no
    longer exists; a step an engine holds (a handle of a backend other than local) keeps its
    status: the engine, not the writer, knows how it stands (`runs` asks it: reconcile), and so
    does one of such a backend without a handle yet (its writer may have died right after
    submitting it: reconcile looks for it on the engine, and calls it crashed where it is not)."""
    host = record.host
    return status_now(record.status, record.backend,
                      None if record.handle is None else record.handle.get("backend"),
                      host.hostname, host.pid, host.pid_start)


def status_now(status: Status, backend: str, handle_backend: Any, hostname: Any, pid: Any,
               pid_start: Any) -> Status:
    """`effective_status` from a record's facts (the runs' index keeps them)."""
    if status not in (Status.RUNNING, Status.QUEUED):
        return status
    if backend != "local" and handle_backend != "local":
        return status
    if hostname != os.uname().nodename or not isinstance(pid, int):
        return status  # another machine's run: we cannot tell
    alive = process_start(pid) == pid_start
    return status if alive else Status.CRASHED


MAX_RECORD_BYTES = 64 << 20  # a record is a few KiB; the plan of thousands of steps fits


def problem_of(data: Any, run_id: str) -> str | None:
    """Why `data` (run.json of the run directory `run_id`, parsed) is not a run record: the
    published schema (record.schema.json) decides, and the id must be its directory's name."""
    if not isinstance(data, dict):
        return f"holds {_kind(data)}, not a record (a JSON object)"
    if data.get("id") != run_id:
        if "id" not in data:
            return "has no id"
        return f"has id {shown_value(data['id'])}, which is not its directory's name"
    return record_problem(data)


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


# `corrupt` is no status a record has (Status has none such): `runs` lists a run directory
# whose run.json cannot be used under it, with the problem, so that it hides no other run.
CORRUPT = "corrupt"


@dataclass(frozen=True)
class Loaded:
    """What a run directory holds: its record, or why it has none that can be used."""
    id: str
    record: RunRecord | None
    problem: str | None = None  # None with no record: run.json was never written

    @property
    def status(self) -> str:
        """The record's status; `crashed` with no run.json, `corrupt` with an unusable one."""
        if self.record is not None:
            return self.record.status.value
        return Status.CRASHED.value if self.problem is None else CORRUPT

    def row(self) -> dict[str, Any]:
        """The record's JSON form, or a stand-in that says what is wrong, for lists."""
        if self.record is not None:
            return self.record.to_json()
        row: dict[str, Any] = {"id": self.id, "status": self.status, "entry_point": None,
                               "duration": None, "metrics": {}}
        if self.problem is not None:  # None: mlproject killed before its first write
            row["problem"] = self.problem
        return row


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
        parsed = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return Loaded(run_id, None, f"run.json is not UTF-8 (byte 0x{data[exc.start]:02x} at "
                                    f"offset {exc.start})")
    except RecursionError:
        return Loaded(run_id, None, "run.json is nested too deeply")
    except ValueError as exc:
        return Loaded(run_id, None, f"run.json is not valid JSON: {shown(str(exc))}")
    problem = problem_of(parsed, run_id)
    if problem is not None:
        return Loaded(run_id, None, f"run.json {problem}")
    record = from_json(parsed, checked=True)  # problem_of checked it: not twice
    return Loaded(run_id, replace(record, status=effective_status(record)))


def read(run_dir: Path) -> RunRecord | None:
    """The record of a run directory, or None when it has none of the right shape."""
    return load(run_dir).record


def run_names(base: Path) -> list[str]:
    """The run directories' names, sorted (by start time): as `run_dirs`, from the directory's
    own entry types (no stat of each: 10,000 runs are listed in ~10 ms)."""
    try:
        with os.scandir(base) as entries:
            return sorted(e.name for e in entries
                          if not e.name.startswith(".") and e.is_dir(follow_symlinks=False))
    except OSError:
        return []


def run_dirs(base: Path) -> list[Path]:
    """The run directories, by name (which sorts by start time); links and hidden entries are
    none of mlproject's."""
    try:
        entries = list(base.iterdir())
    except OSError:
        return []
    return sorted(p for p in entries if not p.name.startswith(".") and not p.is_symlink()
                  and p.is_dir())


def loaded_runs(root: str) -> list[Loaded]:
    """Every run of the project, oldest first. A directory without run.json (an mlproject
    killed before its first write) is shown as crashed; one whose run.json cannot be used, as
    corrupt with its `problem`: neither hides the others."""
    return [load(run_dir) for run_dir in run_dirs(runs_dir(root))]


def list_runs(root: str) -> list[dict[str, Any]]:
    """Every run of the project as `loaded_runs` finds them, each as its row (JSON form)."""
    return [loaded.row() for loaded in loaded_runs(root)]


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
    matches = [p for p in run_dirs(runs_dir(root)) if p.name.startswith(run_id)]
    if len(matches) == 1:
        return Lookup(load(matches[0]))
    return Lookup(None, tuple(p.name for p in matches))


def record_of(root: str, run_id: str) -> RunRecord | None:
    """A run's checked record by its id or a unique prefix of it; None when there is none, it
    is unusable, or the prefix names several."""
    found = lookup(root, run_id).found
    return found.record if found else None
