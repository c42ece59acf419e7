"""The state of a project's code: its Git tree plus a hash of what is not committed.

A directory outside Git works too: then every file is hashed (slower, and said so in the plan).
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from mlproject.runner.util import proc
from mlproject.runner.util.hashing import canonical_digest

STATE_DIR = ".mlproject"
_SKIP_DIRS = {".git", STATE_DIR, "__pycache__"}


@dataclass(frozen=True)
class CodeState:
    kind: Literal["git", "files"]
    commit: str | None = None  # None: not Git, or no commit yet
    tree: str | None = None  # the project directory's tree at HEAD
    branch: str | None = None
    changes: Mapping[str, str] = field(default_factory=dict)  # relpath -> sha256, or "deleted"

    def _kept(self, exclude: Iterable[str]) -> dict[str, str]:
        prefixes = [os.path.normpath(p).replace(os.sep, "/").rstrip("/") for p in exclude]
        prefixes.append(STATE_DIR)

        def excluded(path: str) -> bool:
            return any(path == p or path.startswith(p + "/") for p in prefixes)

        return {p: h for p, h in self.changes.items() if not excluded(p)}

    def digest(self, exclude: Iterable[str] = ()) -> str:
        """What the code is, less the paths a step writes itself."""
        kept = {_json_name(p): h for p, h in self._kept(exclude).items()}
        return canonical_digest({"kind": self.kind, "tree": self.tree, "changes": kept})

    def to_json(self, exclude: Iterable[str] = ()) -> dict[str, Any]:
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
    if commit:  # the project directory may not be in HEAD yet (new and untracked): no tree
        found = proc.run(["git", "rev-parse", "--verify", "-q", f"{commit}:{prefix}"], cwd=root,
                         check=False)
        tree = found.stdout.decode().strip() if found.code == 0 else None
    changes = {path: _content(os.path.join(root, path)) for path in sorted(set(changed))}
    return CodeState("git", commit, tree, branch, changes)


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
