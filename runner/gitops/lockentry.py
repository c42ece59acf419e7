"""A step and its run as a lock entry: what `run` writes after the step succeeds, and what
`status` compares with the lock (everything but the results). Paths are the project's
(relative to its root), so that the entry is the same in every clone."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from mlproject.runner.gitops.lockfile import LockEntry, plain_json

if TYPE_CHECKING:
    from mlproject.runner.plan import Step
    from mlproject.runner.state.record import RunRecord


def _relative(path: str, root: str) -> str:
    root = os.path.normpath(root)
    if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
        return os.path.relpath(path, root).replace(os.sep, "/")
    return path


def environment_of(step: Step) -> dict[str, Any]:
    """The step's environment as the lock holds it: name, kind, key, what the fingerprint took,
    and for python and conda the pins' digest and each package's version."""
    from mlproject.runner.util.hashing import canonical_digest

    env = step.environment
    data = env.data
    pins: Any = None
    packages: dict[str, list[str]] = {}
    if env.kind == "python" and isinstance(data.get("pins"), list):
        pins = data["pins"]
        _add(packages, pins)
    elif env.kind == "conda" and isinstance(data.get("conda"), list):
        pins = {"conda": data["conda"], "pip": data.get("pip") or []}
        _add(packages, data["conda"])
        _add(packages, data.get("pip") or [], "pip:")
    taken = step.basis.fixed.get("environment")
    found = {
        "name": env.name, "kind": env.kind, "key": env.key,
        "input": taken if isinstance(taken, str) or taken is None else canonical_digest(taken),
        "digest": None if pins is None else canonical_digest(pins),
        "packages": {name: ", ".join(sorted(set(v))) for name, v in sorted(packages.items())},
    }
    if env.kind == "local":  # what another machine can compare of it (`status`)
        found.update(python=data.get("version"), platform=data.get("platform"))
    elif env.kind == "python":  # the interpreter its key was built for (`status`)
        import os
        import sys

        found.update(python=data.get("version"),
                     platform=f"{sys.platform}-{os.uname().machine}")
    return found


def _add(packages: dict[str, list[str]], pins: Any, prefix: str = "") -> None:
    for pin in pins:
        if isinstance(pin, Mapping) and isinstance(pin.get("name"), str):
            name = pin["name"]
            # a pip package of the same name as a conda one is another package
            key = f"{prefix}{name}" if prefix and name in packages else name
            packages.setdefault(key, []).append(str(pin.get("version")))


_PIN_KEYS = ("path", "md5", "size", "nfiles", "repo", "rev", "sha")


def planned(step: Step, root: str) -> LockEntry:
    """What the entry of `step` would hold before its results: everything but the outputs and
    the metrics (`status` compares it with the lock's)."""
    paths = dict(step.paths)
    params = {k: _relative(v, root) if k in paths else v for k, v in step.parameters.items()}
    data = {name: _pin(pin) for name, pin in step.data.items() if "pending" not in pin}
    return LockEntry(
        fingerprint=step.fingerprint, parameters=params,
        command=str(step.basis.fixed.get("command", step.command)),
        code=str(step.code.get("digest")), environment=environment_of(step), data=data,
        outputs={}, metrics={},
        received={"paths": dict(step.basis.paths), "upstream": plain_json(step.basis.upstream)},
    )


def _pin(pin: Mapping[str, Any]) -> dict[str, Any]:
    """A data pin as the lock holds it. Data of the project's own repository at HEAD has the
    commit of HEAD as its `sha`, which moves with every commit (the lock's own among them):
    the lock holds None there, else committing the lock would make it stale."""
    found = {k: pin.get(k) for k in _PIN_KEYS}
    if pin.get("repo") is None and pin.get("rev") is None:
        found["sha"] = None
    return found


def entry_for(step: Step, record: RunRecord) -> LockEntry:
    """The entry of a step that succeeded: `step` as it ran (its fingerprint taken from what it
    received), `record` its completed run record (outputs, metrics)."""
    outputs = {out: (str(h["md5"]) if isinstance(h, Mapping) and "md5" in h else None)
               for out, h in record.outputs.items()}
    return replace(planned(step, record.project), fingerprint=record.fingerprint,
                   outputs=outputs, metrics=dict(record.metrics))
