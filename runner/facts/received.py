"""What a step receives from the workspace, fingerprinted: the content its path parameters
name and what its upstream steps left there. Read by `plan` as the workspace is now, by `run`
right before each step (not to be confused with observing facts: observe.py)."""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from mlproject.runner.plan import Plan, Step
from mlproject.runner.util.hashing import Links


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


def received(root: str, step: Step, before: Mapping[str, Step], *, save: bool,
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


def received_plan(plan: Plan) -> Plan:
    """The plan's fingerprints from the workspace as it is now (what `plan` shows)."""
    done: dict[str, Step] = {}
    for step in plan.steps:
        done[step.entry_point] = received(plan.project, step, done, save=False)
    return replace(plan, steps=tuple(done.values()))
