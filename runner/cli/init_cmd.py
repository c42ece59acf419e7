"""`mlproject init DIR`: a new project from the packaged template; never overwrites a file.

Everything is checked before anything is written, and what was written is taken back when a
write fails halfway (disk full): a directory ends up with the whole template or with nothing
new. A template name that is a link in DIR, dangling or not, is a clash: init never writes
through it (out of the directory). A spec file in another case (`mlproject`, `MLProject`) is
a clash too: on a case-sensitive filesystem ours would sit beside it, and be the one found.
"""
from __future__ import annotations

import argparse
import os
import sys
from importlib import resources
from pathlib import Path

from mlproject.runner.cli.common import error
from mlproject.runner.util.hashing import shown

_SKIP = {"__init__.py", "__pycache__"}
_SPEC = "MLproject"


def _clashes(target: Path, template: dict[str, bytes]) -> list[str]:
    """The names in `target` that init would overwrite, write through, or shadow."""
    clashes = []
    present = os.listdir(target)
    for name in sorted(template):
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


def main(args: argparse.Namespace) -> int:
    source = resources.files("mlproject.templates") / "project"
    target = Path(args.directory)
    template = {item.name: item.read_bytes() for item in source.iterdir()
                if item.name not in _SKIP}
    try:
        why = _refusal(target, template)
        if why:
            return error(why)
        _write(target, template)
    except OSError as exc:
        failed = shown(exc.filename) if isinstance(exc.filename, str) else shown(str(target))
        return error(f"cannot create {failed}: {exc.strerror or exc}: nothing was written")
    sys.stderr.write(f"mlproject: created {shown(str(target))} ({', '.join(sorted(template))}); "
                     f"run it with: mlproject run {shown(str(target))}\n")
    return 0
