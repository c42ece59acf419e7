"""A plan from elsewhere met with this checkout (see planfile.py for how paths move): rebased
under its root, its environments tried on this machine, compared with the same plan made here
(what moved, old -> new), and completed with what was acquired here."""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from mlproject.runner.plan import Plan


def moved_path(path: str, old: str, new: str) -> str:
    """`path` moved from under the directory `old` to under `new`; any other path as it is."""
    if path == old or path.startswith(old + os.sep):
        return new + path[len(old):]
    return path


def rebase(plan: Plan, root: str) -> Plan:
    """The plan with every path inside its project moved under `root` (see planfile.py)."""
    old, new = os.path.normpath(plan.project), os.path.normpath(root)
    if old == new:
        return plan

    def moved(path: str) -> str:
        return moved_path(path, old, new)

    steps = []
    for step in plan.steps:
        paths = {k: moved(v) for k, v in step.paths.items()}
        parameters = {k: paths.get(k, v) for k, v in step.parameters.items()}
        basis = replace(step.basis, hashed={k: moved(v) for k, v in step.basis.hashed.items()})
        steps.append(replace(step, command=step.command.replace(old + os.sep, new + os.sep),
                             parameters=parameters, paths=paths, basis=basis))
    return replace(plan, project=new, spec_file=moved(plan.spec_file), steps=tuple(steps))


def overrides_of(plan: Plan) -> tuple[str, tuple[str, ...], str | None]:
    """(entry point, -P values, --env) that resolve the plan again: its target's parameters as
    it holds them (path parameters rebased; the values of needed steps are their defaults)."""
    target = next(s for s in plan.steps if s.entry_point == plan.target)
    return (plan.target, tuple(f"{k}={v}" for k, v in target.parameters.items()),
            plan.env_manager)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text[:12] if isinstance(value, str) and len(value) == 64 else text


def moved(planned: Plan, here: Plan) -> list[str]:
    """What no longer matches between the plan (rebased) and the same plan made here, step by
    step (old -> new); what the plan left pending is not a difference."""
    if [s.entry_point for s in planned.steps] != [s.entry_point for s in here.steps]:
        return [f"steps: {', '.join(s.entry_point for s in planned.steps)} -> "
                f"{', '.join(s.entry_point for s in here.steps)}"]
    said: list[str] = []
    for old, new in zip(planned.steps, here.steps, strict=True):
        name = old.entry_point
        a, b = old.basis.fixed, new.basis.fixed
        if a.get("code") != b.get("code"):
            said.append(f"{name}: the code state: {_code(old.code)} -> {_code(new.code)}")
        if old.command != new.command:
            said.append(f"{name}: the command: {old.command!r} -> {new.command!r}")
        env_a, env_b = old.environment, new.environment
        if env_b.problem and not env_a.problem:
            said.append(f"{name}: environment {env_b.name}: {env_b.problem}")
        elif (env_a.name, env_a.kind) != (env_b.name, env_b.kind):
            said.append(f"{name}: the environment: {env_a.name} ({env_a.kind}) -> "
                        f"{env_b.name} ({env_b.kind})")
        elif a.get("environment") != b.get("environment") or (
                env_a.key and env_b.key and env_a.key != env_b.key):
            said.append(f"{name}: environment {env_a.name}: key {_short(env_a.key or a.get('environment'))}"
                        f" -> {_short(env_b.key or b.get('environment'))} (its lock or inputs "
                        "changed)")
        said.extend(_data_moved(name, old.data, new.data))
        rest = {k for k in (*a, *b) if k not in ("code", "command", "environment", "data")}
        said.extend(f"{name}: {k}: {_short(a.get(k))} -> {_short(b.get(k))}"
                    for k in sorted(rest) if a.get(k) != b.get(k))
    return said


def _code(code: Mapping[str, Any]) -> str:
    if code.get("kind") == "git":
        dirty = f" + {code.get('changed_files')} uncommitted" if code.get("dirty") else ""
        return f"git {str(code.get('commit') or 'no commit')[:12]}{dirty} ({_short(code.get('digest'))})"
    return f"{code.get('files')} files ({_short(code.get('digest'))})"


def _data_moved(step: str, old: Mapping[str, Mapping[str, Any]],
                new: Mapping[str, Mapping[str, Any]]) -> list[str]:
    said = []
    for name in dict.fromkeys([*old, *new]):
        a, b = old.get(name), new.get(name)
        if a is None or b is None:
            said.append(f"{step}: data {name}: {'declared' if a is None else 'no longer declared'}")
        elif "pending" in a or "pending" in b:
            continue  # not pinned when planned: what acquisition found is the pin
        elif a.get("md5") != b.get("md5"):
            said.append(f"{step}: data {name}: md5 {a.get('md5')} -> {b.get('md5')}")
        elif a.get("sha") != b.get("sha"):
            said.append(f"{step}: data {name}: {a.get('rev') or 'HEAD'} at {str(a.get('sha'))[:12]}"
                        f" -> {str(b.get('sha'))[:12]}")
    return said


def unbuildable(plan: Plan) -> list[str]:
    """Why environments of the plan cannot be made here from its data (an interpreter of
    another version, another platform), before anything runs."""
    from mlproject.runner.envs.base import EnvError
    from mlproject.runner.envs.kinds import kind

    said = []
    seen = set()
    for step in plan.steps:
        env = step.environment
        if env.name in seen or not env.data or env.pending:
            continue
        seen.add(env.name)
        try:
            kind(env.kind).from_plan(env.data)
        except EnvError as exc:
            said.append(f"environment {env.name}: {exc}")
    return said


def completed(planned: Plan, here: Plan) -> Plan:
    """The plan to execute: as planned, each step whose environment or data was pending taken
    from `here`, where they were acquired (all else in it was found equal by `moved`)."""
    steps = tuple(new if old.pending else old
                  for old, new in zip(planned.steps, here.steps, strict=True))
    return replace(planned, steps=steps)
