"""Materialize a pin: fetch it into a fresh directory beside its place, verify every file's md5
(DVC's own streaming API returns corrupted objects without a word), and only then move it in.

Objects come from the DVC cache and the default remote, read natively when the remote is a local
directory; other remotes (S3, GCS, Azure, SSH) go through `dvc.api.DVCFileSystem`, imported here
and only then. An import's data may also come from the repository it was imported from.
"""
from __future__ import annotations

import json
import os
import posixpath
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from mlproject.runner.data import pins, repos
from mlproject.runner.data.pins import DataError, DataPin, Log, workspace_path
from mlproject.runner.data.verify import CHUNK, Status, StreamHash, check
from mlproject.runner.state import records

_THREADS = min(8, os.cpu_count() or 1)


class _Missing(Exception):
    """An object in none of the native places: DVC's API may still reach the remote."""


@dataclass(frozen=True)
class ObjectStore:
    root: str  # a DVC cache or a local directory remote
    label: str
    cache: bool = False

    def object(self, md5: str, dvc: int) -> str:
        # DVC 3 keeps md5 objects under files/md5/; DVC 2's md5-dos2unix ones at the top
        parts = ("files", "md5", md5[:2], md5[2:]) if dvc == 3 else (md5[:2], md5[2:])
        return os.path.join(self.root, *parts)


@dataclass
class Sources:
    stores: list[ObjectStore] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # places that could not be searched, and why
    api: tuple[str, str] | None = None  # (repository, path in it) for DVCFileSystem
    api_remote: tuple[str, str] = ("", "")  # the (name, url) of the remote DVC's API reaches


def _config(text: str) -> dict[str, dict[str, str]]:
    """DVC's configobj INI: `[core]`, `['remote "name"']`, `key = value`."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            name = " ".join(line[1:-1].strip().strip("'").replace('"', " ").split())
            current = sections.setdefault(name, {})
        elif current is not None and "=" in line:
            key, value = (part.strip() for part in line.split("=", 1))
            current[key] = value[1:-1] if value[:1] == value[-1:] and value[:1] in "'\"" else value
    return sections


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return ""


def _dvc_root(repo: repos.GitRepo, own: bool) -> str | None:
    """The DVC project on disk: for the project, the nearest directory up to the Git top with a
    `.dvc` (`dvc init --subdir` allowed); for another repository, the directory given."""
    if repo.worktree is None:
        return None
    # the real directory: a project named through a link walks up the repository it is in
    here = os.path.realpath(repo.worktree)
    while own and not os.path.isdir(os.path.join(here, ".dvc")):
        if os.path.samefile(here, repo.cwd) or os.path.dirname(here) == here:
            return os.path.realpath(repo.worktree)
        here = os.path.dirname(here)
    return here


def _add_repo(sources: Sources, repo: repos.GitRepo, sha: str, own: bool, remote: Any,
              path: str) -> None:
    root = _dvc_root(repo, own)
    dotdvc = os.path.join(root, ".dvc") if root else None
    text = _read(os.path.join(dotdvc, "config")) if own and dotdvc else (
        (repo.blob(sha, ".dvc/config") or b"").decode("utf-8", "replace"))
    config = _config(text)
    for section, values in _config(_read(os.path.join(dotdvc, "config.local")) if dotdvc else ""
                                   ).items():
        config.setdefault(section, {}).update(values)
    cache = config.get("cache", {}).get("dir")
    if dotdvc:
        cache_dir = os.path.join(dotdvc, cache) if cache else os.path.join(dotdvc, "cache")
        sources.stores.append(ObjectStore(cache_dir, f"the DVC cache of {repo.where} ({cache_dir})", True))
    name = remote if isinstance(remote, str) else config.get("core", {}).get("remote")
    url = config.get(f"remote {name}", {}).get("url") if name else None
    if not name or not url:
        sources.notes.append(f"{repo.where} has no default DVC remote (`dvc remote add -d NAME URL`)"
                             if not name else f"remote {name!r} of {repo.where} has no url")
    elif "://" in url:
        if sources.api is None:
            sources.api_remote = (name, url)
        if sources.api is None and own and root:  # the project may sit below the DVC root
            inside = os.path.relpath(os.path.join(repo.worktree or root, path), root)
            sources.api = (root, inside.replace(os.sep, "/"))
        elif sources.api is None:  # DVC's API reaches the first remote that is not a directory
            sources.api = (root or repo.where, path)
    elif not os.path.isabs(os.path.expanduser(url)) and dotdvc is None:
        sources.notes.append(f"remote {name!r} of {repo.where} is a relative path ({url}), which "
                             "only a local clone can resolve")
    else:
        where = os.path.normpath(os.path.join(dotdvc or "", os.path.expanduser(url)))
        if os.path.isdir(where):
            sources.stores.append(ObjectStore(where, f"remote {name!r} ({where})"))
        else:
            sources.notes.append(f"the DVC remote {name!r} of {repo.where} is {where}, which does "
                                 "not exist (check `dvc remote list`, or mount it)")


def sources(root: str, pin: DataPin, log: Log = pins.quiet) -> Sources:
    """Where the pin's objects may be, in the order they are tried."""
    repo = repos.repo_of(root, pin.repo, log)
    if pin.repo is not None and repos.is_url(pin.repo) and repo.commit(pin.sha) is None:
        repos.fetch(repo, pin.sha, log)  # a pin made on another machine, newer than our clone
    found = pins.tracking_output(repo, pin.sha, pin.path, f"data.{pin.name}", pin.rev or "HEAD")
    found_sources = Sources()
    _add_repo(found_sources, repo, pin.sha, pin.repo is None, found.out.get("remote"), pin.path)
    deps = found.doc.get("deps") if isinstance(found.doc, dict) else None
    dep: Any = deps[0] if isinstance(deps, list) and deps and isinstance(deps[0], dict) else {}
    origin = dep.get("repo")
    if isinstance(origin, dict) and isinstance(origin.get("url"), str):
        # `dvc import`: the data is also wherever the repository it came from keeps it
        url, rev = origin["url"], str(origin.get("rev_lock") or origin.get("rev") or "HEAD")
        base = os.path.dirname(os.path.join(repo.worktree or root, found.dvcfile))
        try:
            source = repos.clone(url, log) if repos.is_url(url) else repos.local_repo(
                os.path.join(base, os.path.expanduser(url)), url)
            sha = source.commit(rev)
            if sha is not None:
                _add_repo(found_sources, source, sha, False, None, str(dep.get("path", "")))
        except DataError as exc:
            found_sources.notes.append(str(exc))
    return found_sources


def copy_hashed(read: Callable[[int], bytes], dest: str, kind: str) -> str:
    """Copy a stream to `dest`, returning the hash of the bytes written."""
    digest = StreamHash(kind)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with open(dest, "wb") as out:
        while chunk := read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _fetch(md5: str, pin: DataPin, stores: list[ObjectStore], dest: str, label: str) -> None:
    """One object, from the first place holding a sound copy; a corrupted copy in the cache
    falls through to the remote, but corruption everywhere is an error."""
    bad = []
    for store in stores:
        source = store.object(md5, pin.dvc)
        try:
            with open(source, "rb") as handle:
                got = copy_hashed(handle.read, dest, pin.kind)
        except FileNotFoundError:
            continue  # only the source can be absent: `dest`'s directory is made by copy_hashed
        if got == md5.removesuffix(".dir"):
            return
        bad.append(f"{store.label} holds {got}")
    if bad:
        raise DataError(f"data.{pin.name}: {label} is corrupted: expected md5 {md5}, but "
                        f"{'; '.join(bad)}; nothing was changed. Push a sound copy (`dvc push` "
                        "where the data is intact) or delete the corrupted object")
    raise _Missing(f"{label} (md5 {md5})")


def _verified_listing(pin: DataPin, body: bytes) -> list[tuple[str, str]]:
    try:
        listing = [(str(e["relpath"]), str(e["md5"])) for e in json.loads(body)]
    except (ValueError, KeyError, TypeError):
        raise DataError(f"data.{pin.name}: the directory object {pin.md5} is not a DVC listing"
                        ) from None
    for rel, _ in listing:
        clean = posixpath.normpath(rel)
        if clean != rel or clean.startswith(("/", "../")) or clean == "..":
            raise DataError(f"data.{pin.name}: the directory object {pin.md5} names {rel!r}, "
                            "which is outside the directory")
    return listing


def _native(pin: DataPin, stores: list[ObjectStore], stage: str) -> None:
    if not pin.isdir:
        _fetch(pin.md5, pin, stores, stage, pin.local)
        return
    listing_file = stage + ".dir"
    _fetch(pin.md5, pin, stores, listing_file, f"the listing of {pin.local}")
    with open(listing_file, "rb") as handle:
        listing = _verified_listing(pin, handle.read())
    os.makedirs(stage)

    def one(entry: tuple[str, str]) -> None:
        _fetch(entry[1], pin, stores, os.path.join(stage, *entry[0].split("/")),
               f"{pin.local}/{entry[0]}")

    with ThreadPoolExecutor(_THREADS) as pool:
        futures = [pool.submit(one, entry) for entry in listing]
        try:
            for future in futures:
                future.result()
        except BaseException:
            for future in futures:  # the first bad file decides: copy no more
                future.cancel()
            raise


def _unsaved(root: str, pin: DataPin, status: Status, found: Sources) -> bool:
    """Whether the workspace copy is in no DVC cache, so that replacing it would lose it."""
    if status.found is None or pin.repo is not None:
        return False  # inputs of other repositories live in .mlproject/data, ours to replace
    return not any(os.path.exists(s.object(status.found, pin.dvc)) for s in found.stores if s.cache)


def pull(root: str, pin: DataPin, *, force: bool = False, log: Log = pins.quiet) -> Status:
    """Make the workspace copy the pinned version; raises DataError and leaves it untouched."""
    status = check(root, pin)
    if status.ok:
        return status
    found = sources(root, pin, log)
    if status.state == "differs" and not force and _unsaved(root, pin, status, found):
        raise DataError(f"data.{pin.name}: {pin.local} holds changes that are in no DVC cache "
                        f"(md5 {status.found}); pulling would lose them. Save them (`dvc add "
                        f"{pin.local}`), or move them away, then pull again (--force discards them)")
    target = workspace_path(root, pin)
    if pin.repo is not None:
        records.ensure_state_dir(root)  # its .gitignore keeps inputs of other repositories out
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = tempfile.mkdtemp(dir=os.path.dirname(target), prefix=".mlproject-pull-")
    try:
        stage = os.path.join(tmp, "new")
        log(f"pulling data.{pin.name} ({pin.md5}) into {pin.local}")
        try:
            _native(pin, found.stores, stage)
        except _Missing as missing:
            if found.api is None:
                searched = ", ".join(s.label for s in found.stores) or "no DVC cache or remote"
                notes = "".join(f"\n  {note}" for note in found.notes)
                raise DataError(f"data.{pin.name}: {missing} is in none of: {searched}{notes}\n"
                                "  fix: `dvc push` from where the data exists, or fix the remote"
                                ) from None
            shutil.rmtree(stage, ignore_errors=True)
            from mlproject.runner.data.through_dvc import copy_through_dvc

            copy_through_dvc(pin, *found.api, stage, found.api_remote)
        if os.path.lexists(target):  # move aside, rename in, delete the old
            os.rename(target, os.path.join(tmp, "old"))
            try:
                os.rename(stage, target)
            except OSError:
                os.rename(os.path.join(tmp, "old"), target)
                raise
        else:
            os.rename(stage, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Status(pin.name, pin.local, "matches", pin.md5, pin.md5)
