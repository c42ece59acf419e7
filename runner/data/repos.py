"""The Git repositories data is pinned in: this project's own, a local clone, or a URL cloned
once (bare) into the user cache. Cloning and fetching act; `cached_clone` only looks."""
from __future__ import annotations

import hashlib
import os
import posixpath
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlproject.runner.data.base import DataError, Log, quiet
from mlproject.runner.util import proc
from mlproject.runner.util.files import cache_root

_SCP_URL = re.compile(r"^[\w.-]+@[\w.-]+:")


def _clone_dir(url: str) -> Path:
    return cache_root() / "repos" / hashlib.sha256(url.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class GitRepo:
    cwd: str  # where git runs: the top of a work tree, or a bare repository
    prefix: str  # the project's directory inside the repository: '' or 'sub/'
    worktree: str | None  # that directory on disk; None for a bare clone
    where: str  # for messages

    def commit(self, rev: str) -> str | None:
        found = proc.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
                         cwd=self.cwd, check=False)
        return found.stdout.decode().strip() if found.code == 0 else None

    def blob(self, sha: str, path: str) -> bytes | None:
        """A file of the DVC project at `sha`, or None where it has none."""
        found = proc.run(["git", "cat-file", "blob", f"{sha}:{self.prefix}{path}"], cwd=self.cwd,
                         check=False)
        return found.stdout if found.code == 0 else None

    def dvc_files(self, sha: str, needles: list[str]) -> list[str]:
        """The `.dvc` files and `dvc.lock` files at `sha` that mention any of `needles`."""
        args = ["git", "grep", "-l", "-z", "-F", "--full-name"]
        for needle in needles:
            args += ["-e", needle]
        args += [sha, "--", f":(top){self.prefix}*.dvc", f":(top){self.prefix}*dvc.lock"]
        found = proc.run(args, cwd=self.cwd, check=False)  # 1: nothing matched
        names = [n.decode("utf-8", "surrogateescape") for n in found.stdout.split(b"\0") if n]
        names = [n.removeprefix(f"{sha}:").removeprefix(self.prefix) for n in names]
        return sorted(n for n in names if n.endswith(".dvc") or posixpath.basename(n) == "dvc.lock")


def is_url(repo: str) -> bool:
    return "://" in repo or bool(_SCP_URL.match(repo))


def own_repo(root: str) -> GitRepo:
    try:
        shown = proc.run(["git", "rev-parse", "--show-toplevel", "--show-prefix"], cwd=root)
    except proc.ProcError:
        raise DataError(f"{root} is not in a Git repository: data pins are read from Git; "
                        "run `git init` and commit the .dvc files") from None
    top, prefix = (shown.stdout.decode().split("\n") + ["", ""])[:2]
    return GitRepo(top, prefix, root, "this repository")


def local_repo(path: str, where: str) -> GitRepo:
    if not os.path.isdir(path):
        raise DataError(f"repo {where!r}: no such directory {path}; give `repo:` as a Git URL or "
                        "the path of a local clone")
    shown = proc.run(["git", "rev-parse", "--show-toplevel", "--show-prefix"], cwd=path, check=False)
    if shown.code == 0:
        top, prefix = (shown.stdout.decode().split("\n") + ["", ""])[:2]
        return GitRepo(top, prefix, path, where)
    bare = proc.run(["git", "rev-parse", "--is-bare-repository"], cwd=path, check=False)
    if bare.code == 0 and bare.stdout.strip() == b"true":
        return GitRepo(path, "", None, where)
    raise DataError(f"repo {where!r}: {path} is not a Git repository")


def clone(url: str, log: Log = quiet) -> GitRepo:
    """A bare clone of `url` in the user cache, made once, published by a rename, healed when
    broken (an interrupted clone leaves only a temporary directory behind)."""
    dest = _clone_dir(url)
    if dest.exists():
        healthy = proc.run(["git", "rev-parse", "--git-dir"], cwd=str(dest), check=False)
        if healthy.code == 0:
            return GitRepo(str(dest), "", None, url)
        log(f"the clone of {url} in {dest} is broken; cloning it again")
        shutil.rmtree(dest, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    log(f"cloning {url}")
    tmp = tempfile.mkdtemp(dir=dest.parent, prefix=".clone-")
    try:
        try:
            proc.run(["git", "clone", "--bare", "--quiet", "--", url, f"{tmp}/repo"], timeout=1800)
        except proc.ProcError as exc:
            raise DataError(f"cannot clone {url}: check the `repo:` URL and your access to it\n{exc}"
                            ) from None
        try:
            os.rename(f"{tmp}/repo", dest)
        except OSError:
            pass  # another process published it first: use theirs
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return GitRepo(str(dest), "", None, url)


def fetch(repo: GitRepo, rev: str, log: Log = quiet) -> None:
    log(f"fetching {repo.where} for {rev}")
    proc.run(["git", "fetch", "--quiet", "origin", "+refs/heads/*:refs/heads/*",
              "+refs/tags/*:refs/tags/*"], cwd=repo.cwd, check=False, timeout=1800)
    if re.fullmatch(r"[0-9a-f]{7,40}", rev) and repo.commit(rev) is None:
        # a commit on no branch: servers that allow it hand it out by its full name
        proc.run(["git", "fetch", "--quiet", "origin", rev], cwd=repo.cwd, check=False, timeout=1800)


def repo_of(root: str, repo: str | None, log: Log = quiet) -> GitRepo:
    if repo is None:
        return own_repo(root)
    if is_url(repo):
        return clone(repo, log)
    return local_repo(os.path.join(root, os.path.expanduser(repo)), repo)


def cached_clone(url: str) -> GitRepo | None:
    """The clone of `url` in the user cache when there is a healthy one; nothing is written."""
    dest = _clone_dir(url)
    if not dest.is_dir():
        return None
    healthy = proc.run(["git", "rev-parse", "--git-dir"], cwd=str(dest), check=False)
    return GitRepo(str(dest), "", None, url) if healthy.code == 0 else None
