"""`mlproject report [PATH] --html OUT`: the project's runs (.mlproject/runs/) as one static page.

The project is PATH (a directory, or its MLproject file); the MLproject file itself is not
loaded: the page shows what the records say, also of a project whose file no longer loads. OUT
is written atomically, and only where nothing is, or where a page this command wrote is (its
generator marker in the first bytes): any other file is the user's and is refused. Exit 0
written; 2 (one line on stderr) no such project, OUT a directory or another file, not writable.
"""
from __future__ import annotations

import argparse
import errno
import os
import stat
import sys
from pathlib import Path

from mlproject.runner.util import exitcodes

_HEAD_BYTES = 4096  # the marker is in the page's <head>, within its first few hundred bytes


def main(args: argparse.Namespace) -> int:
    root = _root(args.path)
    if isinstance(root, _Refused):
        return _error(str(root))
    out = Path(args.html)
    refused = _refused(out)
    if refused is not None:
        return _error(f"--html {out}: {refused}")
    import datetime as dt

    from mlproject.runner.htmlreport import data, page
    from mlproject.runner.state import records
    from mlproject.runner.util.console import say
    from mlproject.runner.util.files import write_atomic

    loaded = records.loaded_runs(root)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    text = page.render(data.build(loaded, root=os.path.abspath(root), generated_at=now))
    try:
        write_atomic(out, text)
    except OSError as exc:
        return _error(f"--html {out}: cannot write it ({exc.strerror or exc})")
    shown = sum(one.record is not None for one in loaded)
    say(f"wrote {out} ({shown} run{'s' if shown != 1 else ''})")
    return exitcodes.OK


class _Refused(str):
    """Why PATH names no project (a str, to tell it from the root)."""


def _root(path: str) -> str | _Refused:
    if not os.path.exists(path):
        return _Refused(f"{path}: no such project directory or MLproject file")
    if not os.path.isdir(path):
        return os.path.dirname(os.path.abspath(path))  # its MLproject file
    try:
        names = os.listdir(path)
    except OSError as exc:
        return _Refused(f"{path}: cannot list it ({exc.strerror})")
    if not any(n.lower() == "mlproject" for n in names) and not os.path.isdir(
            os.path.join(path, ".mlproject", "runs")):
        return _Refused(f"{path}: not a project (no MLproject file and no runs recorded)")
    return path


def _refused(out: Path) -> str | None:
    """Why OUT must not be written, or None: nothing there, or a page this command wrote."""
    from mlproject.runner.htmlreport.page import MARKER

    try:
        fd = os.open(out, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        return "is a directory (name the page's file)"
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None  # a dangling link: write_atomic replaces the link itself
        return f"cannot read what is there ({exc.strerror})"
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            return "is a directory (name the page's file)"
        if not stat.S_ISREG(mode):
            return "is not a regular file"
        head = os.read(fd, _HEAD_BYTES)
    except OSError as exc:
        return f"cannot read what is there ({exc.strerror})"
    finally:
        os.close(fd)
    if MARKER.encode() not in head:
        return ("a file is there that `mlproject report --html` did not write: refusing to "
                "overwrite it (remove it, or name another file)")
    return None


def _error(message: str) -> int:
    sys.stderr.write(f"mlproject: error: {message}\n")
    return exitcodes.USAGE
