"""`mlproject.lock`: what Git holds of each entry point's last successful run, shared by the team.

One entry per entry point: its fingerprint and what the fingerprint was made of in words people
diff (parameters, the command, the code digest, the environment with its packages, the data
pins, what it received from the workspace), and its results (output hashes, metrics). No run
id, time or host: those stay in the local records. The text is canonical JSON (sorted keys,
indent 2, ASCII), so that re-running an up-to-date pipeline changes no byte and one changed
metric changes one line. It is written under a file lock and replaced atomically; a lock that
is not one this mlproject reads (corrupt, a newer format, a FIFO, a link out of the project,
huge) is a LockError naming the file, and is never overwritten.
"""
from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlproject.runner.plan import Step
    from mlproject.runner.state.record import RunRecord

LOCK_FILE = "mlproject.lock"  # at the project root, committed by users
LOCK_FORMAT = "mlproject.lock/1"
MAX_BYTES = 64 << 20  # 20 steps x 50 metrics is ~60 KB: anything near this is not a lock
FLOCK_NAME = "lock.flock"  # under .mlproject/: the file lock writers take (never replaced)
FLOCK_TIMEOUT = 60.0  # seconds a writer waits for another before saying who holds it
_FORMAT = re.compile(r"mlproject\.lock/(\d+)")


class LockError(Exception):
    """A lock file that cannot be read or written as one; the message names the file (exit 2)."""


class UnknownRef(LockError):
    """`at_ref` was given a revision Git does not know."""


@dataclass(frozen=True)
class LockEntry:
    """One entry point's last successful run."""
    fingerprint: str
    parameters: Mapping[str, str]  # path parameters inside the project relative to it
    command: str  # as the fingerprint takes it (path parameters relative to the project)
    code: str  # the code digest (content-based: the same committed or not)
    # {"name", "kind", "key", "input": what the fingerprint took of it, "digest": hash of the
    #  pins (None for local and docker), "packages": {name: version} for python/conda; for
    #  local also "python" (X.Y.Z) and "platform"}
    environment: Mapping[str, Any]
    data: Mapping[str, Mapping[str, Any]]  # name -> {path, md5, size, nfiles, repo, rev, sha}
    outputs: Mapping[str, str | None]  # path -> DVC's md5 (`.dir` for a directory)
    metrics: Mapping[str, float]  # flat names, as records hold them
    # what the step received from the workspace: {"paths": {parameter: md5 | None},
    # "upstream": {step: {output: md5 | None} | its fingerprint}}: `status` says which moved
    received: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint, "parameters": dict(self.parameters),
            "command": self.command, "code": self.code, "environment": plain_json(self.environment),
            "data": plain_json(self.data), "outputs": dict(self.outputs),
            "metrics": dict(self.metrics), "received": plain_json(self.received),
        }

    @staticmethod
    def from_json(data: Any, where: str) -> LockEntry:
        """The entry `data` holds, checked field by field; LockError names `where` and the field."""
        if not isinstance(data, dict):
            raise LockError(f"{where}: expected an object, found {_kind(data)}")
        wanted = {"fingerprint", "parameters", "command", "code", "environment", "data",
                  "outputs", "metrics", "received"}
        unknown = sorted(set(data) - wanted)
        if unknown:
            raise LockError(f"{where}: unknown key {unknown[0]!r} (a newer mlproject wrote it?)")
        missing = sorted(wanted - set(data))
        if missing:
            raise LockError(f"{where}: {missing[0]!r} is missing")
        for name in ("fingerprint", "command", "code"):
            _check(data[name], str, f"{where}.{name}")
        params = _mapping(data["parameters"], f"{where}.parameters", (str,))
        env = _mapping(data["environment"], f"{where}.environment", None)
        for name in ("name", "kind"):
            _check(env.get(name), str, f"{where}.environment.{name}")
        _mapping(env.get("packages", {}), f"{where}.environment.packages", (str,))
        pins = _mapping(data["data"], f"{where}.data", (dict,))
        outputs = _mapping(data["outputs"], f"{where}.outputs", (str, type(None)))
        metrics = _mapping(data["metrics"], f"{where}.metrics", (int, float))
        if any(isinstance(v, bool) for v in metrics.values()):
            raise LockError(f"{where}.metrics: expected numbers, found a boolean")
        received = _mapping(data["received"], f"{where}.received", (dict,))
        return LockEntry(data["fingerprint"], params, data["command"], data["code"], env, pins,
                         outputs, metrics, received)


@dataclass(frozen=True)
class Lock:
    entries: Mapping[str, LockEntry] = field(default_factory=dict)  # entry point -> entry

    def to_json(self) -> dict[str, Any]:
        return {"format": LOCK_FORMAT,
                "entries": {name: entry.to_json() for name, entry in self.entries.items()}}

    def to_text(self) -> str:
        """Canonical: the same entries give the same bytes, whatever order they came in."""
        return json.dumps(self.to_json(), sort_keys=True, indent=2, ensure_ascii=True) + "\n"

    def with_entry(self, entry_point: str, entry: LockEntry) -> Lock:
        return Lock({**self.entries, entry_point: entry})


def plain_json(value: Any) -> Any:
    """`value` with every mapping a dict and every sequence a list (what json.dumps writes)."""
    if isinstance(value, Mapping):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(v) for v in value]
    return value


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _check(value: Any, cls: type, where: str) -> None:
    if not isinstance(value, cls):
        raise LockError(f"{where}: expected {_kind(cls())}, found {_kind(value)}")


def _mapping(value: Any, where: str, values: tuple[type, ...] | None) -> dict[str, Any]:
    _check(value, dict, where)
    if values is not None:
        for key, item in value.items():
            if not isinstance(item, values):
                raise LockError(f"{where}.{key}: expected {_kind(values[0]())}, found "
                                f"{_kind(item)}")
    return dict(value)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise ValueError(f"the key {key!r} appears twice")
        found[key] = value
    return found


def parse(text: str, where: str) -> Lock:
    """The lock `text` holds; LockError naming `where` when it is not a lock of this format."""
    if re.search(r"^(<{7}|>{7}|={7})( |$)", text, re.MULTILINE):
        raise LockError(f"{where} holds Git conflict markers: resolve the conflict (or delete "
                        "the entries in conflict) and run the steps again to write them")
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise LockError(f"{where} is not JSON (line {exc.lineno} column {exc.colno}: "
                        f"{exc.msg}): fix it, or delete it and run again to write it") from None
    except (ValueError, RecursionError) as exc:
        raise LockError(f"{where} is not a lock: {exc}") from None
    if not isinstance(data, dict):
        raise LockError(f"{where} is not a lock: expected an object, found {_kind(data)}")
    fmt = data.get("format")
    if fmt != LOCK_FORMAT:
        found = _FORMAT.fullmatch(fmt) if isinstance(fmt, str) else None
        if found and int(found.group(1)) > 1:
            raise LockError(f"{where} has format {fmt}, newer than this mlproject reads "
                            f"({LOCK_FORMAT}): upgrade mlproject")
        shown = json.dumps(fmt)[:80] if fmt is not None else "none"
        raise LockError(f"{where} is not a lock: its format is {shown}, expected {LOCK_FORMAT}")
    unknown = sorted(set(data) - {"format", "entries"})
    if unknown:
        raise LockError(f"{where}: unknown key {unknown[0]!r} (a newer mlproject wrote it?)")
    entries = data.get("entries")
    if not isinstance(entries, dict):
        raise LockError(f"{where}: 'entries': expected an object, found {_kind(entries)}")
    return Lock({name: LockEntry.from_json(entry, f"{where}: entry {name!r}")
                 for name, entry in entries.items()})


def path_of(root: str) -> str:
    return os.path.join(root, LOCK_FILE)


def _read_text(root: str) -> str | None:
    """The lock's text, None when there is none; LockError for anything that is not a file of
    ours to read: checked on the open descriptor, so a FIFO never blocks the reader."""
    path = path_of(root)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LockError(f"{path} cannot be read: {exc.strerror or exc}") from None
    if stat.S_ISLNK(info.st_mode):
        real_root = os.path.realpath(root)
        target = os.path.realpath(path)
        if os.path.commonpath([real_root, target]) != real_root:
            raise LockError(f"{path} is a link to {target}, outside the project: the lock is a "
                            "file of the project (replace the link with the file)")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None  # a dangling link inside the project: no lock yet
    except OSError as exc:
        raise LockError(f"{path} cannot be read: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            what = "a FIFO" if stat.S_ISFIFO(info.st_mode) else \
                "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise LockError(f"{path} is {what}: the lock is a regular file (remove it, and run "
                            "again to write one)")
        if info.st_size > MAX_BYTES:
            raise LockError(f"{path} is {info.st_size} bytes, over the {MAX_BYTES >> 20} MiB "
                            "a lock can be: it is not one")
        raw = handle.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise LockError(f"{path} is over the {MAX_BYTES >> 20} MiB a lock can be: it is not one")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LockError(f"{path} is not UTF-8 text (byte {exc.start}): it is not a lock") from None


def read(root: str) -> Lock | None:
    """The project's lock; None when it has none; LockError when it is not one we read."""
    text = _read_text(root)
    return None if text is None else parse(text, path_of(root))


def at_ref(root: str, ref: str) -> Lock | None:
    """The lock as Git holds it at `ref` (`git show`, no checkout); None when `ref` has none.
    UnknownRef when Git knows no such revision; LockError when the blob is not a lock."""
    from mlproject.runner.util import proc

    if ref.startswith("-") or not ref:
        raise UnknownRef(f"{ref!r} is not a revision")
    try:
        return _at_ref(root, ref)
    except proc.ProcError as exc:  # git missing, or a repository it cannot read
        raise LockError(f"cannot read the lock at {ref}: {exc}") from None


def _at_ref(root: str, ref: str) -> Lock | None:
    from mlproject.runner.util import proc

    found = proc.run(["git", "rev-parse", "--verify", "-q", "--end-of-options",
                      f"{ref}^{{commit}}"], cwd=root, check=False)
    if found.code != 0:
        inside = proc.run(["git", "rev-parse", "--git-dir"], cwd=root, check=False)
        if inside.code != 0:
            raise LockError(f"cannot read the lock at {ref}: {root} is not in a Git repository")
        raise UnknownRef(f"unknown revision {ref!r}: Git knows no commit of that name in "
                         f"{root} (fetch it first? `git fetch origin {ref}`)")
    commit = found.stdout.decode().strip()
    listed = proc.run(["git", "ls-tree", "-l", "-z", commit, "--", LOCK_FILE], cwd=root)
    rows = [r for r in listed.stdout.decode("utf-8", "surrogateescape").split("\0") if r]
    where = f"{LOCK_FILE} at {ref} ({commit[:12]})"
    if not rows:
        return None
    meta, _, _ = rows[0].partition("\t")
    mode, kind, oid, size = meta.split()
    if kind != "blob" or mode not in ("100644", "100755"):
        raise LockError(f"{where} is not a file (mode {mode}, {kind})")
    if int(size) > MAX_BYTES:
        raise LockError(f"{where} is {size} bytes, over the {MAX_BYTES >> 20} MiB a lock can be")
    blob = proc.run(["git", "cat-file", "blob", oid], cwd=root)
    try:
        text = blob.stdout.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LockError(f"{where} is not UTF-8 text (byte {exc.start})") from None
    return parse(text, where)


def update(root: str, entry_point: str, entry: LockEntry) -> None:
    """Set `entry_point`'s entry, under the file lock, the other entries kept as they are; the
    file is replaced atomically, and not written at all when nothing changes. LockError when
    the lock there is not one we read (it is left as it is) or cannot be written."""
    import fcntl
    import time
    from pathlib import Path

    from mlproject.runner.state import records
    from mlproject.runner.util.files import write_atomic

    path = path_of(root)
    state = records.state_dir(root)
    try:
        state.mkdir(parents=True, exist_ok=True)
        fd = os.open(state / FLOCK_NAME, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
                     0o666)
    except OSError as exc:
        raise LockError(f"{path} cannot be written: the file lock in {state} cannot be "
                        f"taken ({exc.strerror or exc})") from None
    try:
        deadline = time.monotonic() + FLOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockError(f"{path} cannot be written: another mlproject has held "
                                    f"{state / FLOCK_NAME} for {FLOCK_TIMEOUT:.0f} s") from None
                time.sleep(0.01)
        text = _read_text(root)
        current = Lock() if text is None else parse(text, path)
        new = current.with_entry(entry_point, entry).to_text()
        if new != text:
            try:
                write_atomic(Path(path), new)
            except OSError as exc:
                raise LockError(f"{path} cannot be written: {exc.strerror or exc}") from None
    finally:
        os.close(fd)  # releases the file lock


def planned(step: Step, root: str) -> LockEntry:
    """What the entry of `step` would hold before its results (lockentry.py)."""
    from mlproject.runner.gitops import lockentry

    return lockentry.planned(step, root)


def entry_for(step: Step, record: RunRecord) -> LockEntry:
    """The entry of a step that succeeded in the run `record` (lockentry.py)."""
    from mlproject.runner.gitops import lockentry

    return lockentry.entry_for(step, record)


def write_entry(root: str, step: Step, record: RunRecord) -> None:
    """`update` with the entry of `step`, which succeeded in the run `record` (LockError)."""
    update(root, step.entry_point, entry_for(step, record))
