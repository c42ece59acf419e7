"""The state of a project's code, by content: the same files give the same digest whether they
are committed or not (a lock written before `git commit` still matches after it).

In Git, the files are those of the project's tree at HEAD overlaid with what `git status`
reports (changed, added, untracked and not ignored, deleted), each named by its Git blob id
(`git hash-object`, which applies the repository's filters as `git add` would) and mode, as
`git ls-tree` names committed ones. A directory outside Git works too: then every file is
hashed (slower, and said so in the plan).
"""
from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from mlproject.runner.util import proc
from mlproject.runner.util.hashing import canonical_digest

STATE_DIR = ".mlproject"
LOCK_FILE = "mlproject.lock"  # gitops.lockfile.LOCK_FILE: the lock is a result, not code
_SKIP_DIRS = {".git", STATE_DIR, "__pycache__"}
_MODE = re.compile(r"[0-7]{6}")
_OID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_BATCH = 1000  # paths per `git hash-object`: well under any argument-length limit


@dataclass(frozen=True)
class CodeState:
    kind: Literal["git", "files"]
    commit: str | None = None  # None: not Git, or no commit yet
    tree: str | None = None  # the project directory's tree at HEAD
    branch: str | None = None
    # relpath -> its content id, or "deleted": in Git what differs from HEAD, else every file
    changes: Mapping[str, str] = field(default_factory=dict)
    # Git only: relpath -> "<mode> <blob id>" of every file the project holds now
    files: Mapping[str, str] = field(default_factory=dict)
    _digests: dict[tuple[str, ...], str] = field(default_factory=dict, compare=False,
                                                  repr=False)

    def _excluded(self, exclude: Iterable[str]) -> Any:
        prefixes = [os.path.normpath(p).replace(os.sep, "/").rstrip("/") for p in exclude]
        prefixes += [STATE_DIR, LOCK_FILE]

        def excluded(path: str) -> bool:
            if path.startswith(f".{LOCK_FILE}.") and path.endswith(".tmp"):
                return True  # the lock being replaced by a concurrent run (files.write_atomic)
            return any(path == p or path.startswith(p + "/") for p in prefixes)

        return excluded

    def _kept(self, exclude: Iterable[str]) -> dict[str, str]:
        excluded = self._excluded(exclude)
        return {p: h for p, h in self.changes.items() if not excluded(p)}

    def uncommitted(self, exclude: Iterable[str] = ()) -> list[str]:
        """What differs from HEAD (Git only), less the paths a step writes itself."""
        return sorted(self._kept(tuple(exclude))) if self.kind == "git" else []

    def digest(self, exclude: Iterable[str] = ()) -> str:
        """What the code is, by content, less the paths a step writes itself."""
        exclude = tuple(exclude)
        known = self._digests.get(exclude)  # resolve asks once per step
        if known is not None:
            return known
        excluded = self._excluded(exclude)
        source = self.files if self.kind == "git" else self.changes
        kept = {_json_name(p): h for p, h in source.items() if not excluded(p)}
        made = self._digests[exclude] = canonical_digest({"kind": self.kind, "files": kept})
        return made

    def to_json(self, exclude: Iterable[str] = ()) -> dict[str, Any]:
        exclude = tuple(exclude)
        kept = self._kept(exclude)
        return {
            "kind": self.kind, "commit": self.commit, "tree": self.tree, "branch": self.branch,
            "dirty": bool(kept) if self.kind == "git" else None,
            "changed_files" if self.kind == "git" else "files": len(kept),
            "digest": self.digest(exclude),
        }


def _json_name(path: str) -> str:
    """A file name fit for canonical JSON, one to one. Names are kept surrogate-escaped (so that
    the file can be opened); one that is not UTF-8 cannot be encoded as such, so it becomes its
    bytes in hex after a NUL, which no real file name holds: no two names share a form."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "\0" + os.fsencode(path).hex()
    return path


def _content(path: str) -> str:
    try:
        if os.path.islink(path):
            return "link:" + hashlib.sha256(os.fsencode(os.readlink(path))).hexdigest()
        if os.path.isdir(path):
            return "dir"  # a submodule or a nested repository: its own state is not ours
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()
    except FileNotFoundError:
        return "deleted"


def _porcelain(output: bytes, prefix: str) -> tuple[str | None, str | None, list[str]]:
    commit = branch = None
    paths: list[str] = []
    records = output.split(b"\0")
    i = 0
    while i < len(records):
        rec = records[i].decode("utf-8", "surrogateescape")
        i += 1
        if rec.startswith("# branch.oid "):
            oid = rec.split(" ", 2)[2]
            commit = None if oid == "(initial)" else oid
        elif rec.startswith("# branch.head "):
            head = rec.split(" ", 2)[2]
            branch = None if head == "(detached)" else head
        elif rec.startswith("1 ") or rec.startswith("u "):
            paths.append(rec.split(" ", 8 if rec[0] == "1" else 10)[-1])
        elif rec.startswith("2 "):
            paths.append(rec.split(" ", 9)[-1])
            paths.append(records[i].decode("utf-8", "surrogateescape"))  # the original path
            i += 1
        elif rec.startswith("? "):
            paths.append(rec[2:])
    rel = [p[len(prefix):] for p in paths if p.startswith(prefix)]
    return commit, branch, rel


def code_state(root: str) -> CodeState:
    try:
        shown = proc.run(["git", "rev-parse", "--show-prefix"], cwd=root)
    except proc.ProcError:
        return _files(root)
    prefix = shown.stdout.decode("utf-8", "surrogateescape").strip()
    status = proc.run(["git", "status", "--porcelain=v2", "-z", "--branch",
                       "--untracked-files=all", "--", "."], cwd=root)
    commit, branch, changed = _porcelain(status.stdout, prefix)
    tree = None
    files: dict[str, str] = {}
    if commit:  # the project directory may not be in HEAD yet (new and untracked): no tree
        found = proc.run(["git", "rev-parse", "--verify", "-q", f"{commit}:{prefix}"], cwd=root,
                         check=False)
        tree = found.stdout.decode().strip() if found.code == 0 else None
        if tree:
            files = _listed(root, tree)
    # The lock and .mlproject/ are never code: not hashed (the lock changes after every run)
    never = CodeState("git")._excluded(())
    changes = _identified(root, sorted(p for p in set(changed) if not never(p)))
    changes.update({p: "excluded" for p in set(changed) if never(p)})
    for path, ident in changes.items():
        if ident == "deleted":
            files.pop(path, None)
        else:
            files[path] = ident
    return CodeState("git", commit, tree, branch, changes, files)


def _listed(root: str, tree: str) -> dict[str, str]:
    """relpath -> "<mode> <id>" of every file in `tree` (a submodule: its commit). A tree id
    names its content for ever, so its listing is kept in the user cache: `run` spends no
    `git ls-tree` on a tree it has listed before. An entry that does not read back is listed
    again (and rewritten)."""
    from mlproject.runner.util.files import cache_root, write_atomic

    entry = cache_root() / "trees" / f"{tree}.z"
    try:
        raw = entry.read_bytes()
        if not raw.endswith(b"\0end\0"):  # written whole, or not at all
            raise ValueError(entry)
        return _parsed(raw[:-len(b"end\0")])
    except (OSError, ValueError):
        pass
    listed = proc.run(["git", "ls-tree", "-r", "-z", "--full-tree", tree], cwd=root)
    files = _parsed(listed.stdout)
    try:
        write_atomic(entry, listed.stdout + b"end\0")
    except OSError:
        pass  # a read-only cache only costs speed
    return files


def _parsed(listing: bytes) -> dict[str, str]:
    """`git ls-tree -r -z` output as relpath -> "<mode> <id>"; ValueError for anything else."""
    files = {}
    for row in listing.split(b"\0"):
        if not row:
            continue
        meta, _, name = row.partition(b"\t")
        mode, _, oid = meta.decode().split(" ")
        if not (name and _MODE.fullmatch(mode) and _OID.fullmatch(oid)):
            raise ValueError(row[:80])
        files[name.decode("utf-8", "surrogateescape")] = f"{mode} {oid}"
    return files


def _blob(data: bytes) -> str:
    """Git's id of a blob holding `data` (what `git hash-object` gives without filters)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _identified(root: str, paths: list[str]) -> dict[str, str]:
    """relpath -> "<mode> <id>" as Git would commit it now, or "deleted". Regular files go
    through `git hash-object` (the repository's clean filters and line endings applied)."""
    found: dict[str, str] = {}
    regular: list[str] = []
    for path in paths:
        full = os.path.join(root, path)
        try:
            info = os.lstat(full)
        except FileNotFoundError:
            found[path] = "deleted"
            continue
        except OSError:
            found[path] = "unreadable"
            continue
        if os.path.islink(full):
            found[path] = f"120000 {_blob(os.fsencode(os.readlink(full)))}"
        elif os.path.isdir(full):  # a submodule or a nested repository: its commit
            head = proc.run(["git", "rev-parse", "-q", "--verify", "HEAD"], cwd=full,
                            check=False)
            found[path] = f"160000 {head.stdout.decode().strip() or 'dir'}"
        elif not os.path.isfile(full):
            found[path] = "special"  # a FIFO or a device: never opened (it could block)
        else:
            found[path] = "100755" if info.st_mode & 0o111 else "100644"
            regular.append(path)
    for start in range(0, len(regular), _BATCH):
        batch = regular[start:start + _BATCH]
        hashed = proc.run(["git", "hash-object", "--", *batch], cwd=root, check=False)
        ids = hashed.stdout.decode().split() if hashed.code == 0 else []
        if len(ids) != len(batch):  # one unreadable file fails the batch: one by one, no filters
            ids = [_raw_blob(os.path.join(root, p)) for p in batch]
        for path, oid in zip(batch, ids, strict=True):
            found[path] = f"{found[path]} {oid}"
    return found


def _raw_blob(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            digest = hashlib.sha1(b"blob %d\0" % os.fstat(handle.fileno()).st_size)
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
            return digest.hexdigest()
    except OSError:
        return "unreadable"


def _files(root: str) -> CodeState:
    changes: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for name in filenames:
            if name.endswith(".pyc"):
                continue
            full = os.path.join(dirpath, name)
            changes[os.path.relpath(full, root).replace(os.sep, "/")] = _content(full)
    return CodeState("files", changes=changes)
