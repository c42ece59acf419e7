"""Facts about the world that resolution needs, gathered before it (resolution itself is pure).

Gathering is split by what it does, as DVC keeps `status` apart from `fetch`: `observe.py`
reads (`plan`, `run --dry-run`: no clone, no fetch, no resolution, nothing written to the
cache) and says what is not known yet; `acquire.py` gets that (`run`: a repository cloned or
fetched, an unlocked environment resolved). `received.py` is another matter: the fingerprint
of what a step receives from the workspace, taken after resolution."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlproject.runner.envs.base import normalize
from mlproject.runner.facts import gitstate
from mlproject.spec.model import Spec

if TYPE_CHECKING:
    from mlproject.runner.data.pins import DataPin
    from mlproject.runner.envs.recipes import EnvFact


@dataclass(frozen=True)
class Facts:
    cwd: str  # where the user ran mlproject: relative -P paths are taken from here
    code: gitstate.CodeState
    interpreter: str
    python_version: str
    platform: str
    envs: Mapping[str, EnvFact] = field(default_factory=dict)  # the environments steps use
    data: Mapping[str, DataPin] = field(default_factory=dict)  # the data inputs steps use, pinned
    # the data inputs not pinned yet (their repository is not cloned, or lacks the revision):
    # what `run` would fetch, and how to fetch it ahead
    data_pending: Mapping[str, str] = field(default_factory=dict)
    # name==version of every distribution the local interpreter can import (steps without a
    # declared environment run with it)
    distributions: tuple[str, ...] = ()
    # environment -> digest of what its resolution is made from (the interpreter and the
    # requirements), for environments whose pins are resolved at run time: `plan`, which
    # resolves nothing, and `run` fingerprint the same value
    env_inputs: Mapping[str, str] = field(default_factory=dict)

    @property
    def pending(self) -> list[str]:
        """What `run` must acquire before these facts are complete, in words."""
        return ([f"environment {n}: {f.pending}" for n, f in self.envs.items() if f.pending]
                + [f"data {n}: {text}" for n, text in self.data_pending.items()])


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


def installed_distributions(entries: list[str]) -> tuple[str, ...]:
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
