"""Facts acquired: what observation left pending, got now (`run`, and `run --plan` of a plan
made before it was): a data repository cloned or fetched, an unlocked environment resolved
with uv (the resolution cached). What was already known is kept as observed."""
from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import replace

from mlproject.runner.facts import Facts
from mlproject.spec.model import Spec


def acquire_facts(root: str, spec: Spec, facts: Facts,
                  log: Callable[[str], None] = lambda _: None, *,
                  envs: Collection[str] | None = None) -> Facts:
    """`facts` with nothing pending (`envs`: only these environments are resolved): raises
    DataError where a repository cannot be fetched; an environment that cannot be resolved
    keeps its error (`run` refuses it, naming it)."""
    if not facts.pending:
        return facts
    acquired = dict(facts.envs)
    for name, fact in facts.envs.items():
        if fact.pending and (envs is None or name in envs):
            from mlproject.runner.envs import recipes

            declared = spec.environments[name]
            acquired[name] = recipes.acquire(root, declared, log, translated=(
                declared.kind == "conda" and fact.kind == "python"))
    data = dict(facts.data)
    if facts.data_pending:
        from mlproject.runner.data.pins import pin_input

        for name in facts.data_pending:
            data[name] = pin_input(root, spec.data[name], log)
    return replace(facts, envs=acquired, data=data, data_pending={})
