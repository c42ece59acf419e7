"""Pins: what a declared input is at a Git revision, read from its `.dvc` file or `dvc.lock`.

Only Git is read, never the workspace or a DVC cache: the same MLproject at the same revision
gives the same pin on every machine, in a few milliseconds, without importing DVC.
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from mlproject.runner.util import proc
from mlproject.runner.util.files import cache_root
from mlproject.spec.model import DataInput

Log = Callable[[str], None]
FOREIGN_DIR = ".mlproject/data"  # where inputs from other repositories land, ignored by Git
_SCP_URL = re.compile(r"^[\w.-]+@[\w.-]+:")


def quiet(_: str) -> None:
    pass


class DataError(Exception):
    """Data that cannot be pinned, verified or pulled; the message says what to do about it."""


@dataclass(frozen=True)
class DataPin:
    name: str
    path: str  # '/'-separated; in the project for its own repository, else in that repository
    repo: str | None  # as declared; None: the project's own repository
    rev: str | None  # as declared; None: HEAD
    sha: str  # the revision's full commit
    md5: str  # DVC's hash: `<md5>.dir` for a directory
    size: int | None  # None where the DVC file does not say (DVC 1 and early DVC 2)
    nfiles: int | None
    dvc: int  # 3: md5 of the bytes; 2: md5-dos2unix (no `hash: md5` in the DVC file)

    @property
    def isdir(self) -> bool:
        return self.md5.endswith(".dir")

    @property
    def kind(self) -> str:
        return "md5" if self.dvc == 3 else "md5-dos2unix"

    @property
    def local(self) -> str:
        """Where the workspace copy lives, relative to the project root."""
        if self.repo is None:
            return self.path
        return f"{FOREIGN_DIR}/{self.name}/{posixpath.basename(self.path)}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def workspace_path(root: str, pin: DataPin) -> str:
    return os.path.join(root, *pin.local.split("/"))


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
    dest = cache_root() / "repos" / hashlib.sha256(url.encode()).hexdigest()[:16]
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


def _norm(path: str, label: str) -> str:
    clean = posixpath.normpath(path.replace("\\", "/"))
    if clean.startswith("/") or clean == ".." or clean.startswith("../") or clean == ".":
        raise DataError(f"{label}: path {path!r} must name a file or directory inside the repository")
    return clean


def _load(text: bytes, where: str) -> Any:
    import yaml  # only where data is declared: `run` of a project without data never loads it

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when there is one: ~10x faster
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise DataError(f"{where} is not valid YAML: {exc}") from None


def _outs(repo: GitRepo, sha: str, name: str, doc: Any) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """(path in the DVC project, out entry, whole document) of every output a DVC file names."""
    if not isinstance(doc, dict):
        return
    base = posixpath.dirname(name)
    if name.endswith(".dvc"):
        groups = [(posixpath.join(base, str(doc.get("wdir") or ".")), doc.get("outs"))]
    else:  # dvc.lock: paths are relative to each stage's wdir, which only dvc.yaml records
        stages = doc.get("stages") if "schema" in doc else doc
        stages = stages if isinstance(stages, dict) else {}
        defined = _load(repo.blob(sha, posixpath.join(base, "dvc.yaml")) or b"{}", "dvc.yaml")
        defined = defined.get("stages") if isinstance(defined, dict) else None
        groups = []
        for stage, body in stages.items():
            spec = defined.get(str(stage).split("@")[0]) if isinstance(defined, dict) else None
            spec = spec.get("do", spec) if isinstance(spec, dict) else {}
            wdir = str(spec.get("wdir") or ".") if isinstance(spec, dict) else "."
            groups.append((posixpath.join(base, wdir), body.get("outs") if isinstance(body, dict)
                           else None))
    for where, outs in groups:
        for out in outs if isinstance(outs, list) else []:
            if isinstance(out, dict) and isinstance(out.get("path"), str):
                yield posixpath.normpath(posixpath.join(where, out["path"])), out, doc


@dataclass(frozen=True)
class Found:
    repo: GitRepo
    dvcfile: str  # in the DVC project
    out: Mapping[str, Any]
    doc: Any  # the whole DVC file: an import's `deps` say where its data came from


def _candidates(repo: GitRepo, sha: str, path: str) -> Iterator[tuple[str, bytes]]:
    direct = repo.blob(sha, f"{path}.dvc")
    if direct is not None:
        yield f"{path}.dvc", direct
    for name in repo.dvc_files(sha, sorted(set(path.split("/")))):
        if name != f"{path}.dvc":
            yield name, repo.blob(sha, name) or b""


def tracking_output(repo: GitRepo, sha: str, path: str, label: str, rev: str) -> Found:
    """The output that tracks `path` at `sha`: `<path>.dvc` first (one read), else any `.dvc`
    file or `dvc.lock` that mentions the path's names (one `git grep`)."""
    for name, text in _candidates(repo, sha, path):
        for out_path, out, doc in _outs(repo, sha, name, _load(text, f"{name} at {rev}")):
            if out_path == path:
                return Found(repo, name, out, doc)
            if path.startswith(out_path + "/"):
                raise DataError(f"{label}: {path} is inside {out_path}, which {name} tracks as one "
                                f"directory at {rev}; declare `path: {out_path}` instead")
    raise DataError(f"{label}: {path} is not tracked by DVC at {rev} ({sha[:12]}) in {repo.where}: "
                    f"no {path}.dvc and no dvc.lock output names it; track it with `dvc add "
                    f"{path}` and commit the .dvc file")


def cached_clone(url: str) -> GitRepo | None:
    """The clone of `url` in the user cache when there is a healthy one; nothing is written."""
    dest = cache_root() / "repos" / hashlib.sha256(url.encode()).hexdigest()[:16]
    if not dest.is_dir():
        return None
    healthy = proc.run(["git", "rev-parse", "--git-dir"], cwd=str(dest), check=False)
    return GitRepo(str(dest), "", None, url) if healthy.code == 0 else None


def pin_input(root: str, data: DataInput, log: Log = quiet) -> DataPin:
    """The pin of one declared input, cloning or fetching its repository where it must;
    raises DataError."""
    found = _pin(root, data, log, acquire=True)
    assert isinstance(found, DataPin)  # fetching is what it may do
    return found


def observe_input(root: str, data: DataInput) -> DataPin | str:
    """The pin of one declared input as Git has it here now, cloning and fetching nothing
    (`plan`, `data status`); where the repository is not cloned yet, or its clone lacks the
    revision, what `run` would fetch instead. Raises DataError."""
    return _pin(root, data, quiet, acquire=False)


def _pin(root: str, data: DataInput, log: Log, *, acquire: bool) -> DataPin | str:
    label = f"data.{data.name}"
    path = _norm(data.path, label)
    rev = data.rev or "HEAD"
    if rev.startswith("-"):
        raise DataError(f"{label}: rev {rev!r} is not a revision")
    remote = data.repo is not None and is_url(data.repo)
    ahead = "`mlproject data pull` fetches it ahead"
    try:
        if remote and not acquire:
            assert data.repo is not None
            cloned = cached_clone(data.repo)
            if cloned is None:
                return f"would fetch {data.repo} at {rev} (not cloned yet; {ahead})"
            repo = cloned
        else:
            repo = repo_of(root, data.repo, log)
    except DataError as exc:
        raise DataError(f"{label}: {exc}") from None
    sha = repo.commit(rev)
    if sha is None and remote:
        if not acquire:
            return f"would fetch {data.repo} at {rev} (not in its clone yet; {ahead})"
        fetch(repo, rev, log)
        sha = repo.commit(rev)
    if sha is None:
        hint = "commit first" if data.rev is None else "a tag, branch or commit of it"
        raise DataError(f"{label}: revision {rev!r} not found in {repo.where} ({hint})")
    found = tracking_output(repo, sha, path, label, rev)
    md5 = found.out.get("md5")
    if not isinstance(md5, str) or not re.fullmatch(r"[0-9a-f]{32}(\.dir)?", md5):
        raise DataError(f"{label}: {found.dvcfile} at {rev} records no md5 for {path}; run "
                        f"`dvc commit {found.dvcfile}` (or `dvc repro`) and commit the result")
    algorithm = found.out.get("hash")
    if algorithm not in (None, "md5"):
        raise DataError(f"{label}: {found.dvcfile} hashes {path} with {algorithm!r}; only md5 "
                        "(DVC 3) and md5-dos2unix (DVC 2) are supported")
    size, nfiles = found.out.get("size"), found.out.get("nfiles")
    pin = DataPin(name=data.name, path=path, repo=data.repo, rev=data.rev, sha=sha, md5=md5,
              size=size if isinstance(size, int) else None,
              nfiles=(nfiles if isinstance(nfiles, int) else None) if md5.endswith(".dir") else 1,
              dvc=3 if algorithm == "md5" else 2)
    if data.md5 is not None and data.md5.strip().lower() not in (md5, md5.removesuffix(".dir")):
        raise DataError(f"{label}: md5 {data.md5} is declared, but {path} at {rev} ({sha[:12]}) "
                        f"is {md5}; set `md5: {md5}` if this version is intended, or change `rev:`")
    return pin


def pin_inputs(root: str, inputs: Mapping[str, DataInput], log: Log = quiet) -> dict[str, DataPin]:
    return {name: pin_input(root, data, log) for name, data in inputs.items()}
