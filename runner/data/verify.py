"""Is the workspace copy the pinned version? DVC's hashes, computed natively, cached by stat.

A warm check of unchanged data costs one stat per file: each file's md5 is remembered under
`.mlproject/cache/data/` keyed by (inode, size, mtime_ns, ctime_ns), as DVC's state database
keys by inode, size and mtime (ctime added: mtime can be set back). Links inside a pinned
directory are followed the way DVC follows them; what DVC would hang on or skip is refused
(see hashing.py).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from mlproject.runner.data.pins import DataError, DataPin, workspace_path
from mlproject.runner.state import records
from mlproject.runner.util.files import write_atomic
from mlproject.runner.util.hashing import (
    ContentHash,
    Links,
    Unhashable,
    dir_md5,
    file_md5,
    link_md5,
    open_regular,
    shown,
    walk,
)

CHUNK = 1 << 20  # DVC 2 read (and converted CRLF in) chunks of exactly this size
_SNIFF = 512  # DVC 2 judged a whole file text or binary by its first 512 bytes
_TEXT_BYTES = bytes(range(32, 127)) + b"\n\r\t\f\b"
# A file modified within the timestamp granularity after it was hashed could keep its mtime;
# like Git's "racily clean" rule, hashes of files younger than this are not remembered.
_RACY_NS = 2_000_000_000
_THREADS = min(8, os.cpu_count() or 1)  # hashlib releases the GIL: cold checks use every core


def looks_text(block: bytes) -> bool:
    """DVC 2's guess (dvc/istextfile.py): no NUL, and at most 30% bytes outside printable ASCII."""
    if not block:
        return True
    if b"\0" in block:
        return False
    return len(block.translate(None, _TEXT_BYTES)) / len(block) <= 0.30


class StreamHash:
    """md5, or DVC 2's md5-dos2unix: for a file whose first 512 bytes look like text, CRLF is
    replaced by LF within each 1 MiB chunk (a CRLF split across two chunks stays as it is)."""

    def __init__(self, kind: str) -> None:
        self._md5 = hashlib.md5()
        self._dos2unix = kind == "md5-dos2unix"
        self._text: bool | None = None
        self._pending = bytearray()

    def update(self, data: bytes) -> None:
        if not self._dos2unix:
            self._md5.update(data)
            return
        self._pending += data
        while len(self._pending) >= CHUNK:
            self._chunk(bytes(self._pending[:CHUNK]))
            del self._pending[:CHUNK]

    def _chunk(self, chunk: bytes) -> None:
        if self._text is None:
            self._text = looks_text(chunk[:_SNIFF])
        self._md5.update(chunk.replace(b"\r\n", b"\n") if self._text else chunk)

    def hexdigest(self) -> str:
        if self._pending:
            self._chunk(bytes(self._pending))
            self._pending.clear()
        return self._md5.hexdigest()


def file_hash(path: str, kind: str) -> str:
    if kind == "md5":
        return file_md5(path)
    digest = StreamHash(kind)
    with os.fdopen(open_regular(path), "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class StatCache:
    """Remembered hashes of one pinned path's files; unreadable or foreign content, or a file of
    an older shape, is ignored and rewritten, so a broken cache costs one cold check.

    An entry is trusted while (inode, size, mtime_ns, ctime_ns) stay the same: ctime because
    mtime can be set back (`os.utime`, `touch -d`, `cp -p`, `rsync -t`) after a same-size edit,
    and ctime cannot be set at all."""

    FORMAT = 2  # 1: entries keyed without ctime

    def __init__(self, root: str, local: str) -> None:
        self.file = records.state_dir(root) / "cache" / "data" / (
            hashlib.sha256(os.fsencode(local)).hexdigest()[:20] + ".json")
        self.root, self.local = root, local
        self.entries: dict[str, list[Any]] = {}
        self.changed = True
        try:
            found = json.loads(self.file.read_text(encoding="utf-8"))
            if (found.get("format") == self.FORMAT and found.get("path") == local
                    and isinstance(found.get("files"), dict)):
                self.entries, self.changed = found["files"], False
        except (OSError, ValueError, AttributeError, RecursionError):  # deep JSON too
            pass

    @staticmethod
    def _key(st: os.stat_result, kind: str) -> list[Any]:
        return [st.st_ino, st.st_size, [st.st_mtime_ns, st.st_ctime_ns], kind]

    def lookup(self, rel: str, st: os.stat_result, kind: str) -> str | None:
        entry = self.entries.get(rel)  # [inode, size, [mtime_ns, ctime_ns], kind, md5]
        if isinstance(entry, list) and len(entry) == 5 and entry[:4] == self._key(st, kind):
            return str(entry[4])
        return None

    def remember(self, rel: str, st: os.stat_result, kind: str, md5: str, started_ns: int) -> None:
        if started_ns - st.st_mtime_ns >= _RACY_NS:
            self.entries[rel] = [*self._key(st, kind), md5]
            self.changed = True
        elif self.entries.pop(rel, None) is not None:
            self.changed = True

    def keep_only(self, rels: Iterable[str]) -> None:
        kept = {rel: self.entries[rel] for rel in rels if rel in self.entries}
        self.changed |= len(kept) != len(self.entries)
        self.entries = kept

    def save(self) -> None:
        if not self.changed:
            return
        try:
            records.ensure_state_dir(self.root)
            # ensure_ascii: names that are not UTF-8 (surrogate-escaped) stay writable
            write_atomic(Path(self.file), json.dumps(
                {"format": self.FORMAT, "path": self.local, "files": self.entries}))
        except OSError:
            pass  # a read-only project only costs speed


def hash_path(path: str, kind: str, cache: StatCache | None = None, *, links: Links = "follow",
              label: str | None = None) -> ContentHash:
    """DVC's hash of a file or directory under `kind` (md5 or md5-dos2unix). FileNotFoundError
    if absent; Unhashable (an OSError) naming `label` for what cannot be hashed (hashing.walk)."""
    started = time.time_ns()
    isdir, entries = walk(path, label or path, links)
    files = [e for e in entries if not e.link]
    known = {e.rel: cache.lookup(e.rel, e.st, kind) if cache else None for e in files}
    todo = [(e.rel, e.path) for e in files if known[e.rel] is None]
    if len(todo) > 1 and _THREADS > 1:
        with ThreadPoolExecutor(_THREADS) as pool:
            hashed = dict(zip([rel for rel, _ in todo],
                              pool.map(lambda t: file_hash(t[1], kind), todo), strict=True))
    else:
        hashed = {rel: file_hash(full, kind) for rel, full in todo}
    if cache is not None:
        for e in files:
            if e.rel in hashed:
                cache.remember(e.rel, e.st, kind, hashed[e.rel], started)
        cache.keep_only(known)
    md5s = {rel: known[rel] or hashed[rel] for rel in known}
    md5s.update((e.rel, link_md5(e.path)) for e in entries if e.link)
    size = sum(e.st.st_size for e in entries)
    if isdir:
        return ContentHash(dir_md5(md5s.items()), size, len(entries))
    return ContentHash(md5s[""], size, 1)


State = Literal["matches", "differs", "missing"]


@dataclass(frozen=True)
class Status:
    name: str
    path: str  # the workspace copy, relative to the project root
    state: State
    expected: str
    found: str | None  # the workspace copy's hash; None when it is missing

    @property
    def ok(self) -> bool:
        return self.state == "matches"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def check(root: str, pin: DataPin) -> Status:
    path = workspace_path(root, pin)
    if not os.path.lexists(path):
        return Status(pin.name, pin.local, "missing", pin.md5, None)
    cache = StatCache(root, pin.local)
    try:
        found = hash_path(path, pin.kind, cache, label=pin.local)
    except Unhashable as exc:
        raise DataError(f"data.{pin.name}: {exc}") from None
    except OSError as exc:
        raise DataError(f"data.{pin.name}: cannot read {shown(pin.local)}: {exc}") from None
    cache.save()
    return Status(pin.name, pin.local, "matches" if found.md5 == pin.md5 else "differs", pin.md5,
                  found.md5)


def describe(pin: DataPin, status: Status) -> str:
    """Why a pinned input cannot be used, and the command that fixes it."""
    version = f"{pin.rev or 'HEAD'}, commit {pin.sha[:12]}"
    if pin.repo is not None:
        version += f" of {pin.repo}"
    if status.state == "missing":
        head = f"data.{pin.name}: {status.path} is missing"
    else:
        head = f"data.{pin.name}: {status.path} does not match its pin"
    return (f"{head}\n  expected: {pin.md5} ({version})\n"
            f"  found:    {status.found or 'nothing'}\n"
            f"  fix:      mlproject data pull {pin.name}   (or: mlproject run --pull)")


def require(root: str, pins: Sequence[DataPin]) -> list[Status]:
    """Check every pin; raise DataError describing each one that does not match."""
    statuses = [check(root, pin) for pin in pins]
    bad = [describe(pin, status) for pin, status in zip(pins, statuses, strict=True) if not status.ok]
    if bad:
        raise DataError("\n".join(bad))
    return statuses
