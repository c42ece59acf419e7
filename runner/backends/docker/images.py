"""The image a step runs in: a reference (pinned by digest, or a tag that can move), or one built
from a Dockerfile once per content hash of its context and tagged with that hash.

The context is what `.dockerignore` leaves of the directory (the Dockerfile always), without
`.mlproject` (mlproject's own runs and caches, which change with every run); it is sent to
`docker build` as a tar made here from exactly the files hashed, so the hash names what was
built. What the hash cannot see: a base image named by a tag (`FROM python:3.11`), the network.
"""
from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

HASH_VERSION = 1  # bump when what the context hash covers changes (every built image rebuilds)
REPOSITORY = "mlproject"  # built images are tagged mlproject/<environment>:<content hash>
_ALWAYS_LEFT_OUT = (".mlproject",)  # at the top of the project


def pinned(ref: str) -> bool:
    """Whether the reference names one image for good (a digest), not a tag that can move."""
    return "@sha256:" in ref or ref.startswith("sha256:")


def moving_tag_note(ref: str) -> str:
    return (f"image {ref} is a tag without a digest: it can move between runs; the image id "
            "and repository digest run are recorded (pin it as NAME@sha256:...)")


@dataclass(frozen=True)
class Build:
    """What `docker build` is given (paths relative to the project, '/'-separated)."""
    context: str
    dockerfile: str
    args: Mapping[str, str]

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Build:
        return cls(str(raw.get("context") or "."), str(raw.get("dockerfile") or "Dockerfile"),
                   {str(k): str(v) for k, v in dict(raw.get("args") or {}).items()})

    def in_context(self) -> str:
        """The Dockerfile's path inside the context (what `docker build --file` takes)."""
        return os.path.relpath(self.dockerfile, self.context).replace(os.sep, "/")


class ContextError(ValueError):
    """The build context cannot be read (missing, unreadable): said before anything runs."""


def tag(environment: str, digest: str) -> str:
    name = re.sub(r"[^a-z0-9._-]+", "-", environment.lower()).strip("._-") or "env"
    return f"{REPOSITORY}/{name}:{digest[:16]}"


def context_digest(root: str, build: Build) -> str:
    """The content hash of what `docker build` would be sent, and of how it builds it."""
    digest = hashlib.sha256(f"mlproject-docker-context/{HASH_VERSION}\0".encode())
    digest.update(f"{build.in_context()}\0".encode())
    for name, value in sorted(build.args.items()):
        digest.update(f"arg {name}={value}\0".encode())
    for rel, path, info in entries(root, build):
        digest.update(f"{rel}\0{_kind(info)}\0".encode())
        if stat.S_ISLNK(info.st_mode):
            digest.update(os.readlink(path).encode() + b"\0")
        elif stat.S_ISREG(info.st_mode):
            digest.update(_file_digest(path) + b"\0")
    return digest.hexdigest()


def entries(root: str, build: Build) -> Iterator[tuple[str, str, os.stat_result]]:
    """(path in the context, path here, lstat) of what the context holds, sorted; ContextError
    when it is not a directory, or its Dockerfile is missing."""
    base = os.path.join(root, *build.context.split("/")) if build.context != "." else root
    if not os.path.isdir(base):
        raise ContextError(f"the build context {build.context} is not a directory of the project")
    dockerfile = build.in_context()
    if not os.path.isfile(os.path.join(base, *dockerfile.split("/"))):
        raise ContextError(f"the Dockerfile {build.dockerfile} does not exist")
    ignore = Ignore.read(os.path.join(base, ".dockerignore"))
    top = os.path.normpath(base) == os.path.normpath(root)
    found: list[tuple[str, str, os.stat_result]] = []
    for here, dirs, files in os.walk(base):
        rel_dir = os.path.relpath(here, base).replace(os.sep, "/")
        prefix = "" if rel_dir == "." else rel_dir + "/"
        kept = []
        for name in sorted(dirs):
            rel = prefix + name
            if top and rel in _ALWAYS_LEFT_OUT:
                continue
            if os.path.islink(os.path.join(here, name)):
                files.append(name)  # a link to a directory is sent as a link
                continue
            if ignore.excludes(rel) and not ignore.may_include_below(rel):
                continue
            kept.append(name)
            if not ignore.excludes(rel):
                found.append((rel, os.path.join(here, name), os.lstat(os.path.join(here, name))))
        dirs[:] = kept
        for name in sorted(files):
            rel = prefix + name
            if ignore.excludes(rel) and rel not in (dockerfile, ".dockerignore"):
                continue
            path = os.path.join(here, name)
            try:
                found.append((rel, path, os.lstat(path)))
            except OSError as exc:
                raise ContextError(f"{path}: {exc.strerror or exc}") from None
    found.sort(key=lambda item: item[0])
    return iter(found)


def write_tar(root: str, build: Build, out: IO[bytes]) -> None:
    """The context as a tar stream: the files hashed, owned by root, mtimes kept."""
    import tarfile

    with tarfile.open(fileobj=out, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        for rel, path, _ in entries(root, build):
            info = tar.gettarinfo(path, arcname=rel)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isreg():
                with open(path, "rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)


def _kind(info: os.stat_result) -> str:
    if stat.S_ISDIR(info.st_mode):
        return "dir"
    if stat.S_ISLNK(info.st_mode):
        return "link"
    return "exec" if info.st_mode & 0o111 else "file"


def _file_digest(path: str) -> bytes:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise ContextError(f"{path}: {exc.strerror or exc}") from None
    return digest.digest()


@dataclass(frozen=True)
class Ignore:
    """A `.dockerignore`, matched as docker 20.10's builder does (moby's fileutils): the last
    pattern that matches a path, or one of its parent directories, decides; `!` re-includes;
    `*` and `?` stop at '/', `**` spans directories."""
    patterns: tuple[tuple[bool, re.Pattern[str], int], ...]  # (exception, regex, depth)

    @classmethod
    def read(cls, path: str) -> Ignore:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                lines = handle.read().splitlines()
        except FileNotFoundError:
            return cls(())
        except OSError as exc:
            raise ContextError(f"{path}: {exc.strerror or exc}") from None
        found = []
        for line in lines:
            if line.startswith("#"):
                continue
            text = line.strip()
            if not text:
                continue
            exception = text.startswith("!")
            if exception:
                text = text[1:].strip()
            if not text:
                continue
            text = os.path.normpath(text).replace(os.sep, "/")
            if len(text) > 1 and text.startswith("/"):
                text = text[1:]
            found.append((exception, re.compile(_regex(text)), len(text.split("/"))))
        return cls(tuple(found))

    def excludes(self, rel: str) -> bool:
        parts = rel.split("/")
        matched = False
        for exception, regex, depth in self.patterns:
            if exception != matched:
                continue  # only an exception can undo a match, only a pattern can make one
            hit = regex.match(rel) is not None
            if not hit and len(parts) > 1 and depth <= len(parts) - 1:
                hit = regex.match("/".join(parts[:depth])) is not None
            if hit:
                matched = not exception
        return matched

    def may_include_below(self, rel: str) -> bool:
        """Whether an exception could re-include something inside an excluded directory."""
        return any(exception for exception, _, _ in self.patterns)


def _regex(pattern: str) -> str:
    out = "^"
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if pattern[i + 1:i + 2] == "*":
                i += 1
                if pattern[i + 1:i + 2] == "/":
                    i += 1
                out += ".*" if i + 1 >= len(pattern) else "(.*/)?"
            else:
                out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out += re.escape(ch)
            else:
                out += pattern[i:end + 1]  # a class, as Go's filepath.Match writes it ([^a-z])
                i = end
        else:
            out += re.escape(ch)
        i += 1
    return out + "$"
