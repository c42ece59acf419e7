"""Is an installed lock complete? Walk the dependencies of what it pins, extras included, through
the metadata of the built environment: a lock that pins only the top level (`requests[socks]`
without urllib3 or PySocks) installs without a word and fails later, at import time."""
from __future__ import annotations

import json
from typing import Any

from mlproject.runner.envs.base import EnvError, normalize
from mlproject.runner.envs.requirements import Requirements
from mlproject.runner.util import proc

# Runs in the environment's interpreter: the values markers are evaluated against there, and
# where its packages are. Written for any Python 3.
_PROBE = """
import json, os, platform, sys
def fmt(info):
    text = "%d.%d.%d" % (info.major, info.minor, info.micro)
    return text if info.releaselevel == "final" else text + info.releaselevel[0] + str(info.serial)
print(json.dumps({"env": {
    "implementation_name": sys.implementation.name,
    "implementation_version": fmt(sys.implementation.version), "os_name": os.name,
    "platform_machine": platform.machine(), "platform_release": platform.release(),
    "platform_system": platform.system(), "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]), "sys_platform": sys.platform},
    "path": [p for p in sys.path if p]}))
"""


def _facts(python: str) -> tuple[dict[str, str], list[str]]:
    try:
        out = proc.run([python, "-I", "-c", _PROBE], timeout=60).stdout
        found = json.loads(out)
        return dict(found["env"]), list(found["path"])
    except (proc.ProcError, ValueError, KeyError, TypeError) as exc:
        raise EnvError(f"cannot inspect the built environment with {python}: {exc}") from None


def missing(python: str, lock: Requirements) -> list[str]:
    """What the pins need and the environment lacks (or has at another version), for people."""
    from importlib.metadata import distributions

    from packaging.markers import Marker
    from packaging.requirements import InvalidRequirement, Requirement

    env, path = _facts(python)
    installed: dict[str, Any] = {}
    for found in distributions(path=path):
        name = found.metadata["Name"]
        if isinstance(name, str):
            installed.setdefault(normalize(name), found)
    queue: list[tuple[str, frozenset[str], str]] = [
        (p.name, frozenset(p.extras), "the lock") for p in lock.pins
        if p.marker is None or Marker(p.marker).evaluate({**env, "extra": ""})]
    seen: set[tuple[str, frozenset[str]]] = set()
    problems: dict[str, str] = {}
    while queue:
        name, extras, wanted_by = queue.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        dist = installed.get(name)
        if dist is None:
            problems.setdefault(name, f"{name} (needed by {wanted_by})")
            continue
        shown = f"{name}[{','.join(sorted(extras))}]" if extras else name
        for text in dist.requires or []:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue  # a broken metadata line is the package's problem, not the lock's
            if req.marker is not None and not any(
                    req.marker.evaluate({**env, "extra": extra}) for extra in ("", *extras)):
                continue
            dep = normalize(req.name)
            have = installed.get(dep)
            if have is not None and req.specifier and not req.specifier.contains(
                    have.version, prereleases=True):
                problems.setdefault(dep, f"{dep} {req.specifier} (needed by {shown}; "
                                         f"{have.version} is installed)")
            queue.append((dep, frozenset(normalize(e) for e in req.extras), shown))
    return sorted(problems.values())
