"""Python interpreters on this machine: PATH, pyenv, the usual prefixes. Never downloaded.

Asking an interpreter its version costs a process (~20 ms), so answers are cached by the
executable's path, size and mtime.
"""
from __future__ import annotations

import glob
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from mlproject.runner.envs.base import EnvError
from mlproject.runner.util import proc
from mlproject.runner.util.files import cache_root, write_atomic

# Python 2 has neither sys.implementation nor -I: the probe and its flags work on both.
_PROBE = ("import sys, platform; print(platform.python_version() + ' ' + "
          "platform.python_implementation().lower())")
_FLAGS = ["-E", "-s"]  # no PYTHON* variables, no user site: what -I does, where -I exists


@dataclass(frozen=True)
class Interpreter:
    path: str
    version: str  # X.Y.Z
    implementation: str  # cpython, pypy

    def matches(self, request: str) -> bool:
        """'3.11' matches 3.11.x; '3.11.7' only itself; '3' any 3.x."""
        return self.version == request or self.version.startswith(request + ".")


def _candidates() -> list[str]:
    found: list[str] = []
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not directory or "shims" in directory.split(os.sep):
            continue  # pyenv's shims dispatch on the working directory: ask its versions instead
        for name in ("python3", "python3.[0-9]*", "python2", "python2.[0-9]*"):
            found += glob.glob(os.path.join(directory, name))
    pyenv = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    for name in ("python3", "python2"):  # a pyenv 2.7 has no python3
        found += glob.glob(os.path.join(pyenv, "versions", "*", "bin", name))
    for prefix in ("/usr/bin", "/usr/local/bin", "/opt/homebrew/bin"):
        found += glob.glob(os.path.join(prefix, "python[23].[0-9]*"))
    found.append(sys.executable)
    unique: dict[str, str] = {}
    for path in found:
        real = os.path.realpath(path)
        if os.path.isfile(real) and os.access(real, os.X_OK) and not real.endswith("-config"):
            unique.setdefault(real, path)
    return list(unique.values())


def discover() -> list[Interpreter]:
    cache_file = cache_root() / "interpreters.json"
    known = _read_cache(cache_file)
    found, fresh = [], {}
    for path in _candidates():
        try:
            stat = os.stat(path)
        except OSError:
            continue  # removed since it was listed
        stamp = f"{os.path.realpath(path)}:{stat.st_size}:{stat.st_mtime_ns}"
        answer = known.get(stamp)
        if answer is None:
            try:
                out = proc.run([path, *_FLAGS, "-c", _PROBE], timeout=20).stdout.decode(
                    errors="replace").split()
            except proc.ProcError:
                continue
            if len(out) != 2:
                continue
            answer = out
        fresh[stamp] = answer
        found.append(Interpreter(path, answer[0], answer[1]))
    if fresh != known:
        try:
            write_atomic(cache_file, json.dumps(fresh))
        except OSError:
            pass
    return found


def _read_cache(path: Path) -> dict[str, list[str]]:
    """What earlier probes found; anything of another shape is dropped (and rewritten)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items()
            if isinstance(v, list) and len(v) == 2 and all(isinstance(x, str) for x in v)}


def locate(request: str | None) -> Interpreter:
    """The newest interpreter matching the request (the current one when none is asked for)."""
    if request is None:
        request = ".".join(map(str, sys.version_info[:2]))
    found = discover()
    matching = [i for i in found if i.matches(request) and i.implementation == "cpython"]
    if not matching:
        versions = ", ".join(sorted({i.version for i in found}, key=_order)) or "none"
        raise EnvError(f"Python {request} is not installed on this machine (found: {versions}); "
                       "mlproject does not download interpreters: install it (e.g. with pyenv) "
                       "or change the environment's `python:`")
    return max(matching, key=lambda i: (_order(i.version), i.path == sys.executable))


def _order(version: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 0 for p in version.split("."))
