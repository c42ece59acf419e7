"""Facts about the world that resolution needs, gathered before it (resolution itself is pure)."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlproject.runner import gitstate
from mlproject.runner.envs.recipes import EnvFact
from mlproject.spec.model import Spec

if TYPE_CHECKING:
    from mlproject.runner.data.pins import Pin


@dataclass(frozen=True)
class Facts:
    cwd: str  # where the user ran mlproject: relative -P paths are taken from here
    code: gitstate.CodeState
    interpreter: str
    python_version: str
    platform: str
    envs: Mapping[str, EnvFact] = field(default_factory=dict)  # the environments steps use
    data: Mapping[str, Pin] = field(default_factory=dict)  # the data inputs steps use, pinned


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
    data: dict[str, Pin] = {}
    if spec is not None:
        used = {d: spec.data[d] for n in closure(spec, target) for d in spec.entry_points[n].data}
        if used:
            from mlproject.runner.data import resolve_all

            data = resolve_all(root, used, log)
    if spec is not None and env_manager != "local":
        from mlproject.runner.envs.recipes import gather as gather_env

        for name in closure(spec, target):
            wanted = spec.entry_points[name].environment
            if wanted and wanted not in envs:
                envs[wanted] = gather_env(root, spec.environments[wanted],
                                          allow_resolve=allow_resolve, log=log)
    return Facts(
        cwd=os.getcwd(),
        code=gitstate.gather(root),
        interpreter=sys.executable,
        python_version=".".join(map(str, sys.version_info[:3])),
        platform=f"{sys.platform}-{os.uname().machine}",
        envs=envs,
        data=data,
    )
