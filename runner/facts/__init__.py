"""Facts about the world that resolution needs, gathered before it (resolution itself is pure)."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from mlproject.runner.envs.base import normalize
from mlproject.runner.envs.recipes import EnvFact
from mlproject.runner.facts import gitstate
from mlproject.runner.util.hashing import Links
from mlproject.spec.model import Environment, Spec

if TYPE_CHECKING:
    from mlproject.runner.data.pins import DataPin
    from mlproject.runner.plan import Plan, Step


@dataclass(frozen=True)
class Facts:
    cwd: str  # where the user ran mlproject: relative -P paths are taken from here
    code: gitstate.CodeState
    interpreter: str
    python_version: str
    platform: str
    envs: Mapping[str, EnvFact] = field(default_factory=dict)  # the environments steps use
    data: Mapping[str, DataPin] = field(default_factory=dict)  # the data inputs steps use, pinned
    # name==version of every distribution the local interpreter can import (steps without a
    # declared environment run with it)
    distributions: tuple[str, ...] = ()
    # environment -> digest of what its resolution is made from (the interpreter and the
    # requirements), for environments whose pins are resolved at run time: `plan`, which
    # resolves nothing, and `run` fingerprint the same value
    env_inputs: Mapping[str, str] = field(default_factory=dict)


def closure(spec: Spec, target: str) -> list[str]:
    """The target's prerequisites first, depth-first in the order `needs` lists them."""
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        for need in spec.entry_points[name].needs:
            visit(need)
        order.append(name)

    if target in spec.entry_points:
        visit(target)  # load() has refused cycles
    return order


def gather(root: str, spec: Spec | None = None, target: str = "main", *,
           env_manager: str | None = None, allow_resolve: bool = False,
           log: Callable[[str], None] = lambda _: None) -> Facts:
    envs: dict[str, EnvFact] = {}
    data: dict[str, DataPin] = {}
    env_inputs: dict[str, str] = {}
    if spec is not None:
        used = {d: spec.data[d] for n in closure(spec, target) for d in spec.entry_points[n].data}
        if used:
            from mlproject.runner.data import pin_inputs

            data = pin_inputs(root, used, log)
    if spec is not None and env_manager != "local":
        from mlproject.runner.envs.recipes import gather as gather_env

        for name in closure(spec, target):
            wanted = spec.entry_points[name].environment
            if wanted and wanted not in envs:
                envs[wanted] = gather_env(root, spec.environments[wanted],
                                          allow_resolve=allow_resolve, log=log)
                digest = _unlocked_inputs(root, spec.environments[wanted], envs[wanted])
                if digest:
                    env_inputs[wanted] = digest
    local = spec is None or env_manager == "local" or any(
        spec.entry_points[n].environment is None for n in closure(spec, target))
    return Facts(
        cwd=os.getcwd(),
        code=gitstate.code_state(root),
        interpreter=sys.executable,
        python_version=".".join(map(str, sys.version_info[:3])),
        platform=f"{sys.platform}-{os.uname().machine}",
        envs=envs,
        data=data,
        distributions=installed(_import_path()) if local else (),
        env_inputs=env_inputs,
    )


def _unlocked_inputs(root: str, env: Environment, fact: EnvFact) -> str | None:
    """For a python environment whose pins are resolved when it is run (no lock), the digest
    of what that resolution is cached by; None for any other environment."""
    if env.kind != "python" or fact.error is not None:
        return None
    if fact.recipe is not None and not getattr(fact.recipe, "resolved", False):
        return None  # locked: the recipe's key is the same under `plan` and `run`
    from mlproject.runner.envs import interpreters, python
    from mlproject.runner.envs.base import EnvError

    try:
        wanted = python.inputs(root, env)
        interpreter = interpreters.locate(wanted.python)
        text = wanted.digest(wanted.parse()) if wanted.origin is not None else ""
    except EnvError:
        return None  # gather_env said it already; `run` refuses the environment
    return python.resolution_key(text, interpreter)


def _import_path() -> list[str]:
    """Where the local interpreter imports from, less the directory of the script that started
    mlproject (a step's own sys.path[0] is its own script's)."""
    return list(sys.path if sys.flags.safe_path else sys.path[1:])


def installed(entries: list[str]) -> tuple[str, ...]:
    """name==version of each distribution installed on an import path, from the names of its
    *.dist-info and *.egg-info directories: directory listings, no importlib.metadata."""
    found: set[str] = set()
    for entry in entries:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue  # a zip file, or a directory that does not exist
        for name in names:
            stem, dot, suffix = name.rpartition(".")
            if not dot or suffix not in ("dist-info", "egg-info"):
                continue
            project, _, version = stem.partition("-")
            if suffix == "egg-info":
                version = version.split("-py")[0] or _pkg_info_version(os.path.join(entry, name))
            found.add(f"{normalize(project)}=={version}")
    return tuple(sorted(found))




def _pkg_info_version(path: str) -> str:
    """The version in an egg-info's PKG-INFO (a `setup.py develop` names none in the directory)."""
    try:
        with open(os.path.join(path, "PKG-INFO") if os.path.isdir(path) else path,
                  encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("Version:"):
                    return line.split(":", 1)[1].strip()
                if not line.strip():
                    break
    except OSError:
        pass
    return "?"


def content_md5(root: str, path: str, *, links: Links = "follow", save: bool) -> str | None:
    """DVC's md5 of a file or directory (relative to `root`, or absolute), None when it does
    not exist; the stat cache makes unchanged content cost stats. `save`: remember what was
    hashed (`run`); `plan` only reads the cache, and writes nothing."""
    from mlproject.runner.data.verify import StatCache, hash_path

    full = os.path.join(root, path)
    if not os.path.lexists(full):
        return None
    cache = StatCache(root, path)
    try:
        md5 = hash_path(full, "md5", cache, links=links, label=path).md5
    except FileNotFoundError:
        return None
    except OSError as exc:  # unhashable (a FIFO, a broken link) or unreadable: said, not hidden
        return f"unreadable: {exc}"
    if save:
        cache.save()
    return md5


OutputHasher = Callable[[str, tuple[str, ...]], Mapping[str, Any]]


def observe(root: str, step: Step, before: Mapping[str, Step], *, save: bool,
            hash_outputs: OutputHasher | None = None) -> Step:
    """`step` with its fingerprint taken from what it receives now: the content its path
    parameters name, and what its upstream steps (`before`, already observed) left: their
    outputs' hashes (by `hash_outputs`, `run`'s; else read without writing), or their
    fingerprints where they declare no outputs."""
    paths = {name: content_md5(root, path, save=save) for name, path in step.basis.hashed.items()}
    upstream: dict[str, Any] = {}
    for name in step.basis.chained:
        done = before[name]
        if not done.outputs:
            upstream[name] = done.fingerprint
        elif hash_outputs is not None:
            upstream[name] = {out: _md5_of(found)
                              for out, found in hash_outputs(root, done.outputs).items()}
        else:
            upstream[name] = {out: content_md5(root, out, links="record", save=False)
                              for out in done.outputs}
    return step.received(paths, upstream)


def _md5_of(found: Any) -> str | None:
    return str(found["md5"]) if isinstance(found, dict) and "md5" in found else None


def observe_plan(plan: Plan) -> Plan:
    """The plan's fingerprints from the workspace as it is now (what `plan` shows)."""
    done: dict[str, Step] = {}
    for step in plan.steps:
        done[step.entry_point] = observe(plan.project, step, done, save=False)
    return replace(plan, steps=tuple(done.values()))
