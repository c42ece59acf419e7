"""How the code reaches an engine that does not share this filesystem (Kubernetes, Ray): an
archive of the project directory as the record says it was. In Git that is HEAD's tree of the
project directory (`git archive`: exactly the recorded commit, whatever else lies around), and
with --allow-dirty the working tree's files as Git sees them (tracked and untracked, less what
.gitignore leaves out); outside Git, the project's files. What the step's upstream steps wrote
(their declared outputs, which it reads) is added from the workspace: the recorded commit
cannot hold it. The worker unpacks it (`unpack`), refusing what would land outside its root."""
from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from mlproject.runner.util import proc

if TYPE_CHECKING:
    from mlproject.runner.backends.base import RunContext
    from mlproject.runner.plan import Plan, Step

NEVER = (".mlproject", ".git")  # mlproject's state and Git's are never code that travels


class CodeShipError(Exception):
    """The code cannot be archived (Git failed, a file cannot be read)."""


def dirty(root: str, exclude: Iterable[str] = ()) -> list[str]:
    """The files the engine would not see as they are here: what differs from HEAD, less the
    paths `exclude` (what the steps write themselves). Empty outside Git."""
    from mlproject.runner.facts.gitstate import code_state

    return code_state(root).uncommitted(exclude)


def _git_tree(root: str) -> str | None:
    """HEAD's tree of the project directory; None outside Git (or before the first commit)."""
    try:
        prefix = proc.run(["git", "rev-parse", "--show-prefix"], cwd=root).stdout.decode().strip()
    except proc.ProcError:
        return None
    found = proc.run(["git", "rev-parse", "--verify", "-q", f"HEAD:{prefix}"], cwd=root,
                     check=False)
    return found.stdout.decode().strip() if found.code == 0 else None


def _working_files(root: str) -> list[str]:
    """The files of the working tree that Git sees (tracked, and untracked not ignored)."""
    listed = proc.run(["git", "ls-files", "-z", "-c", "-o", "--exclude-standard", "--", "."],
                      cwd=root).stdout
    names = [n.decode("utf-8", "surrogateescape") for n in listed.split(b"\0") if n]
    return sorted({n for n in names if os.path.lexists(os.path.join(root, n))})


def _all_files(root: str) -> Iterator[str]:
    for here, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not (here == root and d in NEVER))
        for name in sorted(files):
            yield os.path.relpath(os.path.join(here, name), root)


def _skipped(rel: str) -> bool:
    top = rel.replace(os.sep, "/").split("/", 1)[0]
    return top in NEVER or rel == "mlproject.lock"


def archive(root: str, *, allow_dirty: bool, include: Iterable[str] = ()) -> bytes:
    """A tar.gz of the project's code (see the module's doc), with the paths `include`
    (relative to `root`: the outputs of upstream steps) added as they are in the workspace."""
    tree = _git_tree(root)
    try:
        with tempfile.TemporaryDirectory(prefix="mlproject-code-") as staging:
            if tree is not None and not allow_dirty:
                top = proc.run(["git", "rev-parse", "--show-toplevel"], cwd=root).stdout
                tar_bytes = proc.run(["git", "archive", "--format=tar", tree],
                                     cwd=top.decode().strip(), timeout=600).stdout
                with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
                    _extract(tar, staging)
                names: list[str] = []
            else:
                names = _working_files(root) if tree is not None else list(_all_files(root))
            for rel in [*names, *include]:
                if _skipped(rel):
                    continue
                _copy(os.path.join(root, rel), os.path.join(staging, rel))
            packed = io.BytesIO()
            with tarfile.open(fileobj=packed, mode="w:gz", compresslevel=6) as tar:
                for rel in sorted(os.listdir(staging)):
                    tar.add(os.path.join(staging, rel), arcname=rel)
            return packed.getvalue()
    except (OSError, tarfile.TarError, proc.ProcError) as exc:
        raise CodeShipError(f"the project's code cannot be archived: {exc}") from None


def upstream_outputs(plan: Plan, step: Step) -> list[str]:
    """The declared outputs of every step `step` needs, directly or not: what it reads that
    the recorded commit cannot hold."""
    by_name = {s.entry_point: s for s in plan.steps}
    seen: set[str] = set()
    todo = list(step.needs)
    while todo:
        name = todo.pop()
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        todo.extend(by_name[name].needs)
    return sorted({out for name in seen for out in by_name[name].outputs})


def archive_for(step: Step, ctx: RunContext) -> bytes:
    """The archive a backend ships for `step` (see `archive`): the recorded commit, or the
    working tree with --allow-dirty (`ctx.allow_dirty`), and its upstream steps' outputs."""
    include = upstream_outputs(ctx.plan, step) if ctx.plan is not None else []
    return archive(ctx.cwd, allow_dirty=ctx.allow_dirty, include=include)


def _copy(source: str, dest: str) -> None:
    if not os.path.lexists(source):
        return
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if os.path.isdir(source) and not os.path.islink(source):
        shutil.copytree(source, dest, symlinks=True, dirs_exist_ok=True)
    else:
        if os.path.lexists(dest):
            os.unlink(dest)
        shutil.copy2(source, dest, follow_symlinks=False)


def _extract(tar: tarfile.TarFile, dest: str) -> None:
    """Extract, refusing members that would land outside `dest` (absolute paths, `..`, links
    pointing out, devices), whatever Python's own tarfile filters are on this worker."""
    real = os.path.realpath(dest)
    for member in tar.getmembers():
        target = os.path.realpath(os.path.join(dest, member.name))
        if os.path.commonpath([target, real]) != real or member.isdev():
            raise CodeShipError(f"the code archive holds {member.name!r}, outside the project")
        if member.issym() or member.islnk():
            pointed = os.path.realpath(os.path.join(os.path.dirname(target), member.linkname)
                                       if member.issym() else os.path.join(dest, member.linkname))
            if os.path.commonpath([pointed, real]) != real:
                raise CodeShipError(f"the code archive's link {member.name!r} points outside "
                                    "the project")
    if hasattr(tarfile, "tar_filter"):  # Python 3.12, and 3.8-3.11 since their 2023 releases
        tar.extractall(dest, filter="tar")
    else:
        tar.extractall(dest)  # every member was checked above


def unpack(path: str, root: str) -> None:
    """The worker's side: the archive at `path` unpacked into `root` (made if missing)."""
    os.makedirs(root, exist_ok=True)
    try:
        with tarfile.open(path, mode="r:*") as tar:
            _extract(tar, root)
    except (OSError, tarfile.TarError) as exc:
        raise CodeShipError(f"the code archive {path} cannot be unpacked: {exc}") from None
