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

from mlproject.runner import proc
from mlproject.runner.envs.base import EnvError
from mlproject.spec.cache import cache_root, write_atomic

_PROBE = "import sys, platform; print(platform.python_version(), sys.implementation.name)"


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
        found += glob.glob(os.path.join(directory, "python3")) + glob.glob(
            os.path.join(directory, "python3.[0-9]*"))
    pyenv = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found += glob.glob(os.path.join(pyenv, "versions", "*", "bin", "python3"))
    for prefix in ("/usr/bin", "/usr/local/bin", "/opt/homebrew/bin"):
        found += glob.glob(os.path.join(prefix, "python3.[0-9]*"))
    found.append(sys.executable)
    unique: dict[str, str] = {}
    for path in found:
        real = os.path.realpath(path)
        if os.path.isfile(real) and os.access(real, os.X_OK) and not real.endswith("-config"):
            unique.setdefault(real, path)
    return list(unique.values())


def discover() -> list[Interpreter]:
    cache_file = cache_root() / "interpreters.json"
    try:
        known: dict[str, list[str]] = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        known = {}
    found, fresh = [], {}
    for path in _candidates():
        stat = os.stat(path)
        stamp = f"{os.path.realpath(path)}:{stat.st_size}:{stat.st_mtime_ns}"
        answer = known.get(stamp)
        if answer is None:
            try:
                out = proc.run([path, "-I", "-c", _PROBE], timeout=20).stdout.decode().split()
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


def find(request: str | None) -> Interpreter:
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
