"""Content hashes: DVC-compatible md5 of files and directories, and canonical JSON digests.

Trees are walked without following anything (lstat only), so no layout can hang a walk or
leave it: special files (FIFO, socket, device) are refused and never opened (opening a FIFO
blocks until a writer comes), and a directory met twice (a bind-mount loop) is refused. Links
are treated one of two ways, chosen by the caller:

- "follow" (data inputs, DVC's way): a link to a regular file counts as that file's bytes, as
  `dvc add` hashes it and as a workspace checked out with `cache.type: symlink` holds every
  file. Where DVC goes wrong mlproject refuses: a broken link or a loop (DVC: a traceback), a
  link to a directory (DVC silently leaves it out of the hash), a link to a special file.
- "record" (outputs): a link is hashed as a link, its md5 being that of its target text with
  `.link` appended (as DVC marks directories with `.dir`), so it never equals a file's md5. It
  is never followed: a broken link, a loop or a link out of the project is what the step
  wrote, hashed as written.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

_CHUNK = 1 << 20
Links = Literal["follow", "record"]
_SPECIAL = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
            (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


class Unhashable(OSError):
    """A path that exists but cannot be hashed; the message says which and why."""


def canonical_digest(value: Any) -> str:
    """sha256 of the canonical JSON of `value` (sorted keys, no whitespace, UTF-8)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def shown(path: str) -> str:
    """A path fit for a message: bytes that are not UTF-8 (surrogate-escaped) as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def open_regular(path: str) -> int:
    """A descriptor of the regular file at `path`. O_NONBLOCK and O_NOFOLLOW: a file swapped
    for a FIFO or a link after it was looked at is refused, never waited on or followed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise Unhashable(f"{shown(path)}: cannot read it: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Unhashable(f"{shown(path)}: changed while it was being hashed")
    return fd


def file_md5(path: str) -> str:
    digest = hashlib.md5()
    with os.fdopen(open_regular(path), "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def link_md5(path: str) -> str:
    """A link as a link: the md5 of its target text, marked so that no file's md5 equals it."""
    return hashlib.md5(os.fsencode(os.readlink(path))).hexdigest() + ".link"


@dataclass(frozen=True)
class ContentHash:
    md5: str  # a file's md5, or DVC's `<md5>.dir` for a directory
    size: int
    nfiles: int

    def to_json(self) -> dict[str, Any]:
        return {"md5": self.md5, "size": self.size, "nfiles": self.nfiles}


def dir_md5(listing: Iterable[tuple[str, str]]) -> str:
    """DVC's directory hash of (relpath, md5) pairs: md5 of its JSON listing sorted by relpath."""
    body = json.dumps([{"md5": md5, "relpath": rel} for rel, md5 in sorted(listing)], sort_keys=True)
    return hashlib.md5(body.encode()).hexdigest() + ".dir"


@dataclass(frozen=True)
class Entry:
    rel: str  # '/'-separated below the walked top; '' for the top itself
    path: str  # what to read: the file, the link itself ("record"), or a link's target file
    st: os.stat_result  # of what is read (lstat of the link for a recorded link)
    link: bool  # hashed as a link (link_md5), never opened


def _special(mode: int) -> str | None:
    return next((what for test, what in _SPECIAL if test(mode)), None)


def _refuse(label: str, what: str) -> Unhashable:
    return Unhashable(f"{shown(label)} is {what}: only regular files, directories "
                      "and links are hashed (special files are never opened: reading one can "
                      "block forever)")


def _followed(path: str, label: str) -> os.stat_result:
    """What a link leads to, for "follow": a regular file, else Unhashable saying why not."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Unhashable(f"{shown(label)} is a link loop") from None
        if exc.errno == errno.ENOENT:
            raise Unhashable(f"{shown(label)} is a broken link (to "
                             f"{shown(os.readlink(path))})") from None
        raise Unhashable(f"{shown(label)}: cannot follow the link: {exc.strerror}"
                         ) from None
    if stat.S_ISDIR(st.st_mode):
        raise Unhashable(f"{shown(label)} is a link to a directory: DVC leaves such "
                         "a link out of a directory's hash; replace it with the directory itself")
    what = _special(st.st_mode)
    if what:
        raise _refuse(label, f"a link to {what}")
    return st


def _item(rel: str, path: str, st: os.stat_result, label: str, links: Links) -> Entry:
    """One non-directory: a regular file, a link, or Unhashable for anything else."""
    if stat.S_ISLNK(st.st_mode):
        if links == "record":
            return Entry(rel, path, st, True)
        return Entry(rel, os.path.realpath(path), _followed(path, label), False)
    what = _special(st.st_mode)
    if what:
        raise _refuse(label, what)
    return Entry(rel, path, st, False)


def walk(top: str, label: str, links: Links) -> tuple[bool, list[Entry]]:
    """(whether `top` is a directory, what its hash is made of). FileNotFoundError when `top`
    does not exist; Unhashable for anything that cannot be hashed, naming it by `label`."""
    st = os.lstat(top)
    if stat.S_ISLNK(st.st_mode) and links == "follow":
        try:
            followed = os.stat(top)
        except OSError:
            followed = st  # _item says why (broken, loop)
        if stat.S_ISDIR(followed.st_mode):  # a linked data directory: the step reads through it
            st = followed
    if not stat.S_ISDIR(st.st_mode):
        return False, [_item("", top, st, label, links)]
    found: list[Entry] = []
    seen = {(st.st_dev, st.st_ino)}
    stack = [("", top)]
    while stack:
        rel, path = stack.pop()
        try:
            with os.scandir(path) as entries:
                listed = [(entry.name, entry.path, entry.stat(follow_symlinks=False))
                          for entry in entries]
        except OSError as exc:
            raise Unhashable(f"{shown(label + '/' + rel)}: cannot list it: "
                             f"{exc.strerror}") from None
        for name, full, lst in listed:
            if stat.S_ISDIR(lst.st_mode):
                if (lst.st_dev, lst.st_ino) in seen:
                    raise Unhashable(f"{shown(f'{label}/{rel}{name}')} is a "
                                     "directory met twice (a mount loop)")
                seen.add((lst.st_dev, lst.st_ino))
                stack.append((f"{rel}{name}/", full))
            else:
                found.append(_item(f"{rel}{name}", full, lst, f"{label}/{rel}{name}", links))
    return True, found
