"""Facts observed: what the project, Git and the cache say now. Nothing is cloned, fetched,
resolved, built or written to the cache (`plan` and `run --dry-run` run on a machine without
network and with a read-only cache, and show the same plan). What is not known yet is said:
`Facts.pending`, and `acquire.py` gets it."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from mlproject.runner.facts import Facts, closure, gitstate, installed_distributions
from mlproject.spec.model import Environment, Spec

if TYPE_CHECKING:
    from mlproject.runner.envs.recipes import EnvFact


def observe_facts(root: str, spec: Spec | None = None, target: str | Sequence[str] = "main", *,
                  env_manager: str | None = None, log: Callable[[str], None] = lambda _: None) -> Facts:
    """`target`: an entry point, or several (`status` observes every step once)."""
    targets = (target,) if isinstance(target, str) else tuple(target)
    names = [] if spec is None else list(dict.fromkeys(n for t in targets
                                                      for n in closure(spec, t)))
    envs: dict[str, EnvFact] = {}
    data = {}
    pending: dict[str, str] = {}
    env_inputs: dict[str, str] = {}
    if spec is not None:
        used = {d: spec.data[d] for n in names for d in spec.entry_points[n].data}
        if used:
            from mlproject.runner.data.pins import observe_input

            for name, declared in used.items():
                found = observe_input(root, declared)
                if isinstance(found, str):
                    pending[name] = found
                else:
                    data[name] = found
    if spec is not None and env_manager != "local":
        for name in names:
            wanted = spec.entry_points[name].environment
            if wanted and wanted not in envs:
                from mlproject.runner.envs import recipes

                envs[wanted] = recipes.observe(root, spec.environments[wanted], log,
                                               manager=env_manager)
                digest = _unlocked_inputs(root, spec.environments[wanted], envs[wanted])
                if digest:
                    env_inputs[wanted] = digest
    local = spec is None or env_manager == "local" or any(
        spec.entry_points[n].environment is None for n in names)
    return Facts(
        cwd=os.getcwd(),
        code=gitstate.code_state(root),
        interpreter=sys.executable,
        python_version=".".join(map(str, sys.version_info[:3])),
        platform=f"{sys.platform}-{os.uname().machine}",
        envs=envs,
        data=data,
        data_pending=pending,
        distributions=installed_distributions(_import_path()) if local else (),
        env_inputs=env_inputs,
    )


def _import_path() -> list[str]:
    """Where the local interpreter imports from, less the directory of the script that started
    mlproject (a step's own sys.path[0] is its own script's)."""
    return list(sys.path if sys.flags.safe_path else sys.path[1:])


def _unlocked_inputs(root: str, env: Environment, fact: EnvFact) -> str | None:
    """For a python environment whose pins are resolved when it is run (no lock), the digest
    of what that resolution is cached by; None for any other environment."""
    translated = env.kind == "conda" and fact.kind == "python"  # a conda file built by uv
    if (env.kind != "python" and not translated) or fact.error is not None:
        return None
    if fact.recipe is not None and not getattr(fact.recipe, "resolved", False):
        return None  # locked: the recipe's key is the same under `plan` and `run`
    from mlproject.runner.envs import interpreters, python
    from mlproject.runner.envs.base import EnvError

    try:
        if translated:
            from mlproject.runner.envs import condatranslate

            wanted = condatranslate.inputs(root, env)[0]
        else:
            wanted = python.inputs(root, env)
        interpreter = interpreters.locate(wanted.python)
        text = wanted.digest(wanted.parse()) if wanted.origin is not None else ""
    except EnvError:
        return None  # observe said it already; `run` refuses the environment
    return python.resolution_key(text, interpreter)
