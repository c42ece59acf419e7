"""A Git URL's project on disk: the repository cloned once (bare) into the user cache, fetched
only when the version asked for is not there (or on --refresh), and checked out by commit into
a clean work tree of that commit, which this process holds while it runs.

Layout, under `cache_root()/sources/<slug>-<digest of the URL>/`: `repo.git` (heads, tags and
the remote's HEAD as `refs/mlproject/remote-head`; no URL is stored in it, so no credential
is), `trees/<commit>` (a `git worktree` of the bare clone; `<commit>-1`... while another
mlproject holds the first), and `lock`, taken while the clone, a fetch or a tree changes.
A clone is made in a temporary directory and renamed: one killed half way leaves only that
directory, removed by the next. A tree is checked before each use: one whose files a run
changed (steps write into the project) is restored to the commit, less its `.mlproject/`
(the runs made there); one that does not read back as that commit is made again."""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from mlproject.runner.gitsource.url import PROTOCOLS, GitSourceError, GitUrl
from mlproject.runner.util import proc
from mlproject.runner.util.files import cache_root, locked

Log = Callable[[str], None]
HEAD_REF = "refs/mlproject/remote-head"
_REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*", f"+HEAD:{HEAD_REF}")
_HEX = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_TIMEOUT = 1800.0
# the tree of a commit this process holds, and the hold (kept open: a fork, `run --detach`'s
# supervisor, keeps it too); a second run in the process uses the same tree, checked again
_HELD: dict[tuple[str, str], tuple[Path, IO[str]]] = {}


@dataclass(frozen=True)
class Checkout:
    tree: str  # the clean work tree of the commit
    project: str  # the project's directory in it (`tree` or `tree/subdirectory`)
    commit: str
    fetched: bool  # whether it was cloned or fetched for this


def checkout(source: GitUrl, version: str | None, *, refresh: bool, log: Log) -> Checkout:
    """The project of `source` at `version` (a branch, tag or commit; None: the remote's HEAD),
    in a clean work tree this process holds; GitSourceError says why there is none."""
    if version is not None and (not version or version.startswith("-") or "\0" in version):
        raise GitSourceError(f"-v {version!r}: not a commit, branch or tag")
    base = cache_root() / "sources" / source.cache_name()
    repo = base / "repo.git"
    with locked(base / "lock", log, f"fetching {source.shown}"):
        fetched = _cloned(source, base, repo, log) or (refresh and _fetch(source, repo, log))
        commit = _commit(repo, version)
        if commit is None and not fetched:
            fetched = _fetch(source, repo, log, version)
            commit = _commit(repo, version)
        if commit is None and version is None:
            raise GitSourceError(f"{source.shown}: its HEAD names no commit (an empty "
                                 "repository?)")
        if commit is None:
            raise GitSourceError(f"{source.shown}: no commit, branch or tag {version!r} (fetched "
                                 "just now)")
        held = _HELD.get((str(base), commit))
        if held is None:
            held = _HELD[(str(base), commit)] = _slot(base / "trees", commit)
        tree = held[0]
        _ready(repo, tree, commit, source, log)
    project = _project_dir(str(tree), source)
    log(f"using {source.shown} at {commit[:12]}{'' if fetched else ' (cached)'} in {project}")
    return Checkout(str(tree), project, commit, fetched)


def _git(args: Sequence[str], *, cwd: Path | None = None, check: bool = True,
         timeout: float = 60) -> proc.Result:
    # Only the transports a project URL may use (submodules included), never a prompt
    env = {**os.environ, "GIT_ALLOW_PROTOCOL": ":".join(PROTOCOLS), "GIT_TERMINAL_PROMPT": "0"}
    if cwd is not None:  # a tree that is not one must never be read as an enclosing repository
        env["GIT_CEILING_DIRECTORIES"] = str(cwd.parent)
    return proc.run(["git", *args], cwd=None if cwd is None else str(cwd), env=env, check=check,
                    timeout=timeout)


def _cloned(source: GitUrl, base: Path, repo: Path, log: Log) -> bool:
    """Clone `source` into `repo` unless a healthy clone is there; whether it cloned."""
    if repo.is_dir() and _commit(repo, None) is not None:  # every fetch sets the remote's HEAD
        return False
    if repo.exists():
        log(f"the clone of {source.shown} in {repo} is broken; cloning it again")
        shutil.rmtree(repo, ignore_errors=True)
    base.mkdir(parents=True, exist_ok=True)
    for left in base.glob(".clone-*"):  # what a clone killed half way left (under the lock)
        shutil.rmtree(left, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=base, prefix=".clone-"))
    try:
        made = tmp / "repo.git"
        _git(["init", "--quiet", "--bare", str(made)])
        _fetch(source, made, log)
        os.rename(made, repo)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return True


def _fetch(source: GitUrl, repo: Path, log: Log, version: str | None = None) -> bool:
    log(f"fetching {source.shown}" + (f" for {version}" if version else ""))
    args = ["--git-dir", str(repo), "fetch", "--quiet", "--prune", "--no-write-fetch-head",
            "--end-of-options", source.url]
    try:
        _git([*args, *_REFSPECS], timeout=_TIMEOUT)
        if version and _HEX.fullmatch(version) and _commit(repo, version) is None:
            # a commit on no branch: servers hand it out by its full name (protocol v2)
            _git([*args, version], check=False, timeout=_TIMEOUT)
    except proc.ProcError as exc:
        raise GitSourceError(f"cannot fetch {source.shown}: check the URL and your access to "
                             f"it\n{source.scrub(exc.output.strip() or str(exc))}") from None
    return True


def _commit(repo: Path, version: str | None) -> str | None:
    rev = HEAD_REF if version is None else version
    found = _git(["--git-dir", str(repo), "rev-parse", "--verify", "--quiet", "--end-of-options",
                  f"{rev}^{{commit}}"], check=False)
    text = found.stdout.decode().strip()
    return text if found.code == 0 and _HEX.fullmatch(text) else None


def _slot(trees: Path, commit: str) -> tuple[Path, IO[str]]:
    """The first tree of `commit` no other mlproject holds, held (the kernel drops the hold
    when this process and its forks end: a killed run holds nothing)."""
    trees.mkdir(parents=True, exist_ok=True)
    number = 0
    while True:
        name = commit if number == 0 else f"{commit}-{number}"
        handle = open(trees / f".{name}.use", "a+")  # noqa: SIM115 (kept open: the hold)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            number += 1
            continue
        return trees / name, handle


def _ready(repo: Path, tree: Path, commit: str, source: GitUrl, log: Log) -> None:
    """`tree` a clean checkout of `commit`: made, restored or made again."""
    head = None
    if (tree / ".git").is_file():
        found = _git(["rev-parse", "--verify", "--quiet", "HEAD"], cwd=tree, check=False)
        head = found.stdout.decode().strip() if found.code == 0 else None
    if head != commit:
        if tree.exists():
            log(f"the work tree {tree} is not a checkout of {commit[:12]}; making it again")
            shutil.rmtree(tree, ignore_errors=True)
        _git(["--git-dir", str(repo), "worktree", "prune"])
        try:
            _git(["--git-dir", str(repo), "worktree", "add", "--quiet", "--detach", "--force",
                  str(tree), commit], timeout=_TIMEOUT)
        except proc.ProcError as exc:
            raise GitSourceError(f"cannot check out {source.shown} at {commit[:12]}:\n"
                                 f"{source.scrub(exc.output.strip())}") from None
        return
    changed = _changed(tree)
    if changed:
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5
                                          else "")
        log(f"restoring the work tree of {commit[:12]}: a previous run changed {shown}")
        _git(["reset", "--quiet", "--hard", commit], cwd=tree)
        _git(["clean", "--quiet", "-ffdx", "-e", ".mlproject/"], cwd=tree)


def _changed(tree: Path) -> list[str]:
    """What differs from the commit in `tree` (ignored files too), less the runs' records."""
    status = _git(["status", "--porcelain=v1", "-z", "--ignored", "--untracked-files=all"],
                  cwd=tree)
    return [p for p in _entries(status.stdout) if ".mlproject" not in p.rstrip("/").split("/")]


def _entries(output: bytes) -> Iterator[str]:
    records = output.split(b"\0")
    i = 0
    while i < len(records):
        rec = records[i].decode("utf-8", "surrogateescape")
        i += 1
        if not rec:
            continue
        yield rec[3:]
        if rec[0] in "RC":  # a rename names its source next
            i += 1


def _project_dir(tree: str, source: GitUrl) -> str:
    """The project's directory in the tree; refused where it is not there or leads out."""
    if not source.subdirectory:
        return tree
    path = os.path.join(tree, source.subdirectory)
    real, top = os.path.realpath(path), os.path.realpath(tree)
    if not real.startswith(top + os.sep):
        raise GitSourceError(f"subdirectory {source.subdirectory!r}: leads out of the repository "
                             "(a link)")
    if not os.path.isdir(real):
        raise GitSourceError(f"subdirectory {source.subdirectory!r}: no such directory in "
                             f"{source.shown}")
    return path
