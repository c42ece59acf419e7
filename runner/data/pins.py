"""Pins: what a declared input is at a Git revision, read from its `.dvc` file or `dvc.lock`.

Only Git is read, never the workspace or a DVC cache: the same MLproject at the same revision
gives the same pin on every machine, in a few milliseconds, without importing DVC.
"""
from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from mlproject.runner.data.base import DataError as DataError  # re-exported: callers ask here
from mlproject.runner.data.base import Log as Log
from mlproject.runner.data.base import quiet as quiet
from mlproject.runner.data.repos import GitRepo, cached_clone, fetch, is_url, repo_of
from mlproject.spec.model import DataInput

FOREIGN_DIR = ".mlproject/data"  # where inputs from other repositories land, ignored by Git


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
