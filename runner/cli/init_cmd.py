"""`mlproject init [DIR] [--template NAME]`: a new project from a packaged template; never
overwrites a file.

A template is a directory of `mlproject.templates` holding an MLproject file. The default one,
`iris`, is a complete GitOps repository: the workflows of templates/github/, its data tracked
with DVC and pushed to a local DVC remote (written natively: DVC is not needed), a Git
repository with a first commit. `project` is the bare skeleton of before (no Git, no DVC).

Everything is checked before anything is written, and what was written is taken back when a
write fails halfway (disk full): a directory ends up with the whole template or with nothing
new. A template name that is a link in DIR, dangling or not, is a clash: init never writes
through it (out of the directory). A spec file in another case (`mlproject`, `MLProject`) is
a clash too: on a case-sensitive filesystem ours would sit beside it, and be the one found.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from mlproject.runner.cli.common import error
from mlproject.runner.util.hashing import shown

_SKIP = {"__init__.py", "__pycache__"}
_SPEC = "MLproject"
DEFAULT = "iris"
BARE = "project"  # the skeleton: files only, no Git repository, no workflows, no DVC
WORKFLOWS = ("pr", "promote")
# the data each complete template tracks with DVC, and its local remote
_DATA = {"iris": "data/iris.csv"}
REMOTE, REMOTE_DIR = "local", "dvc-remote"
_IDENTITY = ["-c", "user.name=mlproject init", "-c", "user.email=mlproject@localhost"]


def names() -> list[str]:
    """The templates that exist: directories of the package with an MLproject file."""
    root = resources.files("mlproject.templates")
    return sorted(item.name for item in root.iterdir()
                  if item.is_dir() and (item / _SPEC).is_file())


def _files(item: Traversable, prefix: str = "") -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for child in item.iterdir():
        if child.name in _SKIP:
            continue
        if child.is_dir():
            found.update(_files(child, f"{prefix}{child.name}/"))
        else:
            found[prefix + child.name] = child.read_bytes()
    return found


def template_files(name: str) -> dict[str, bytes]:
    """What init writes for template NAME: relative '/'-separated path -> content."""
    package = resources.files("mlproject.templates")
    files = _files(package / name)
    if name == BARE:
        return files
    # The environment's Python is the one init runs with, and CI installs the same version:
    # the environment's key (in mlproject.lock) holds the interpreter's version.
    python = f"{sys.version_info[0]}.{sys.version_info[1]}".encode()
    files[_SPEC] = files[_SPEC].replace(b'{python: "3.11"}', b'{python: "' + python + b'"}')
    for workflow in WORKFLOWS:
        text = (package / "github" / f"{workflow}.yml").read_bytes()
        files[f".github/workflows/{workflow}.yml"] = text.replace(
            b'python-version: "3.11"', b'python-version: "' + python + b'"')
    data = _DATA.get(name)
    if data is not None:
        from mlproject.runner.scaffold import dvcnative

        files.update(dvcnative.tracked(data, files[data], remote=REMOTE,
                                       remote_url=f"../{REMOTE_DIR}", remote_dir=REMOTE_DIR))
    return files


def _clashes(target: Path, template: dict[str, bytes]) -> list[str]:
    """The names in `target` that init would overwrite, write through, or shadow."""
    clashes: list[str] = []
    present = os.listdir(target)
    seen: set[str] = set()
    for name in sorted(template):
        parts = name.split("/")
        blocked = False
        for depth in range(1, len(parts)):  # the directories on the way: never through a link
            parent = "/".join(parts[:depth])
            path = target / parent
            if path.is_symlink() or (os.path.lexists(path) and not path.is_dir()):
                if parent not in seen:
                    seen.add(parent)
                    what = "a symbolic link" if path.is_symlink() else "not a directory"
                    clashes.append(f"{parent} ({what})")
                blocked = True
                break
        if blocked:
            continue
        path = target / name
        if path.is_symlink():
            clashes.append(f"{name} (a symbolic link)")
        elif not os.path.lexists(path):
            continue
        elif not path.is_file():
            clashes.append(f"{name} (not a file)")
        # A file already there with the template's content is no clash: init can be run again.
        elif path.read_bytes() != template[name]:
            clashes.append(name)
    others = sorted(n for n in present if n.lower() == _SPEC.lower() and n != _SPEC)
    clashes += [f"{shown(n)} (an MLproject file: a second one would shadow it)" for n in others]
    return clashes


def _refusal(target: Path, template: dict[str, bytes]) -> str | None:
    where = shown(str(target))
    if target.is_symlink() and not target.exists():
        return f"{where} is a symbolic link to nothing: nothing was written"
    if target.exists() and not target.is_dir():
        return f"{where} exists and is not a directory: nothing was written"
    if target.is_dir():
        clashes = _clashes(target, template)
        if clashes:
            return f"{where} already has {', '.join(clashes)}: nothing was written"
    return None


def _missing_dirs(target: Path) -> list[Path]:
    """The directories to create for `target`, outermost first."""
    missing = []
    here = target
    while not os.path.lexists(here) and here != here.parent:
        missing.append(here)
        here = here.parent
    return missing[::-1]


def _write(target: Path, template: dict[str, bytes]) -> None:
    """Create what is missing; on any failure take back everything created, then raise."""
    made: list[Path] = []
    try:
        for directory in _missing_dirs(target):
            directory.mkdir()
            made.append(directory)
        for name, content in sorted(template.items()):
            path = target / name
            for directory in _missing_dirs(path.parent):
                directory.mkdir()
                made.append(directory)
            if path.is_file() and not path.is_symlink():
                continue  # the template's own content, checked above
            # O_EXCL: also fails on a link (dangling or not) put there since the check
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o666)
            made.append(path)
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
    except BaseException:
        for path in reversed(made):
            try:
                path.rmdir() if path.is_dir() else path.unlink()
            except OSError:
                pass
        raise


def _git(target: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=target, check=True, capture_output=True, text=True)


def _first_commit(target: Path) -> str:
    """`git init` and a first commit of everything, unless DIR is a Git repository already
    (then Git is left to its owner). Returns what was done, for the message."""
    if os.path.lexists(target / ".git"):
        return "the Git repository already there was left as it is: commit the new files"
    _git(target, "init", "-q", "-b", "main")
    _git(target, "add", "-A")
    # no identity configured (a fresh CI box, a container): commit as `mlproject init`
    known = os.environ.get("GIT_AUTHOR_EMAIL") or subprocess.run(
        ["git", "config", "user.email"], cwd=target, capture_output=True, text=True).stdout.strip()
    _git(target, *([] if known else _IDENTITY), "commit", "-q", "-m",
         "A new project from `mlproject init`")
    return "a Git repository on branch main with a first commit"


def main(args: argparse.Namespace) -> int:
    name = getattr(args, "template", None) or DEFAULT
    if name not in names():
        return error(f"no template {shown(name)}: choose one of {', '.join(names())}")
    target = Path(args.directory)
    template = template_files(name)
    try:
        why = _refusal(target, template)
        if why:
            return error(why)
        _write(target, template)
    except OSError as exc:
        failed = shown(exc.filename) if isinstance(exc.filename, str) else shown(str(target))
        return error(f"cannot create {failed}: {exc.strerror or exc}: nothing was written")
    where = shown(str(target))
    if name == BARE:
        top = sorted(template)
        sys.stderr.write(f"mlproject: created {where} ({', '.join(top)}); "
                         f"run it with: mlproject run {where}\n")
        return 0
    try:
        done = _first_commit(target)
    except (OSError, subprocess.CalledProcessError) as exc:
        said = getattr(exc, "stderr", None) or str(exc)
        sys.stderr.write(f"mlproject: error: created {where}, but Git failed: {said.strip()}; "
                         "run `git init` and commit the files yourself\n")
        return 1
    sys.stderr.write(f"mlproject: created {where} from the {name} template ({done}); "
                     f"run it with: mlproject run {where}, then commit mlproject.lock "
                     "(see its README.md)\n")
    return 0
