"""Spec + the user's overrides + gathered facts -> Plan. Pure: no process, no file, no network."""
from __future__ import annotations

import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mlproject.runner.facts import Facts, closure
from mlproject.runner.hashing import canonical_digest
from mlproject.runner.plan import EnvChoice, Plan, Step
from mlproject.spec import params, template
from mlproject.spec.model import DataInput, EntryPoint, Spec

FINGERPRINT_VERSION = 1
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "NUMEXPR_NUM_THREADS", "NUMEXPR_MAX_THREADS", "VECLIB_MAXIMUM_THREADS")
_EXTRA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


class ResolveError(Exception):
    """The user's request does not fit the spec (a usage error, exit code 2)."""


@dataclass(frozen=True)
class Overrides:
    entry_point: str = "main"
    params: tuple[str, ...] = ()  # `-P name=value`, as typed
    env_manager: str | None = None  # "local": the current interpreter, whatever is declared


def parse_params(raw: Sequence[str]) -> dict[str, str]:
    """`-P name=value` split on the first `=`, as MLflow does; malformed or repeated is an error."""
    values: dict[str, str] = {}
    for item in raw:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ResolveError(f"-P {item!r}: expected NAME=VALUE")
        if name in values:
            raise ResolveError(f"-P {name}: given more than once")
        values[name] = value
    return values


def resolve(spec: Spec, overrides: Overrides, facts: Facts) -> Plan:
    target = overrides.entry_point
    if target not in spec.entry_points:
        known = ", ".join(spec.entry_points)
        raise ResolveError(f"no entry point {target!r} in {os.path.basename(spec.file)} "
                           f"(declared: {known})")
    user = parse_params(overrides.params)
    steps: dict[str, Step] = {}
    for name in closure(spec, target):
        entry = spec.entry_points[name]
        given = user if name == target else {}
        steps[name] = _step(spec, entry, given, overrides, facts, steps, target)
    notes = []
    if facts.code.kind == "files":
        notes.append(f"{spec.root} is not a Git repository: the code state is a hash of its "
                     f"{len(facts.code.changes)} files")
    return Plan(spec.root, spec.file, spec.digest, spec.name, target, tuple(steps.values()),
                tuple(notes))


def _values(entry: EntryPoint, given: dict[str, str], facts: Facts, root: str,
            target: str) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """(declared values, undeclared values, path parameters) as text, checked against types."""
    values: dict[str, str] = {}
    paths: dict[str, str] = {}
    missing = []
    for name, param in entry.parameters.items():
        if name in given:
            text, base = given[name], facts.cwd
            why = params.type_error(param.type, text)
            if why:
                raise ResolveError(f"parameter {name} ({param.type}): {text!r}: {why}")
        elif param.default is not None:
            text, base = param.default, root
        else:
            missing.append(f"{name} ({param.type})")
            continue
        if param.type == "uri" and not params.is_uri(text):
            raise ResolveError(f"parameter {name} (uri): {text!r}: expected a URI with a scheme")
        if param.type == "path" and not params.is_uri(text):
            text = os.path.normpath(os.path.join(base, os.path.expanduser(text)))
            paths[name] = text
        values[name] = text
    if missing:
        needed = "" if entry.name == target else f" (needed by {target!r}: give it a default)"
        raise ResolveError(f"entry point {entry.name!r} requires parameter"
                           f"{'s' if len(missing) > 1 else ''} {', '.join(missing)}{needed}; "
                           f"give {'them' if len(missing) > 1 else 'it'} with -P NAME=VALUE")
    extras = {k: v for k, v in given.items() if k not in entry.parameters}
    for name in extras:
        if not _EXTRA_NAME.fullmatch(name):
            raise ResolveError(f"-P {name}: not a valid parameter name")
    return values, extras, paths


def _declared(data: DataInput) -> dict[str, Any]:
    return {"name": data.name, "path": data.path, "rev": data.rev, "repo": data.repo, "md5": data.md5}


def _written(spec: Spec) -> list[str]:
    """Paths the project's steps write: results, not code, whichever step declares them."""
    paths = [out for e in spec.entry_points.values() for out in e.outputs]
    return paths + [e.metrics for e in spec.entry_points.values() if e.metrics]


def _environment(spec: Spec, entry: EntryPoint, overrides: Overrides, facts: Facts) -> EnvChoice:
    if overrides.env_manager == "local" or entry.environment is None:
        key = canonical_digest({"kind": "local", "python": facts.interpreter,
                                "version": facts.python_version, "platform": facts.platform})
        return EnvChoice("local", "local", key, facts.interpreter, True)
    fact = facts.envs.get(entry.environment)
    if fact is None:  # facts gathered without environments: say what is declared
        env = spec.environments[entry.environment]
        return EnvChoice(env.name, env.kind, None, str(env.image or env.file or env.python), False)
    return EnvChoice(fact.name, fact.kind, fact.recipe.key if fact.recipe else None, fact.detail,
                     fact.ready, fact.error)


def _step(spec: Spec, entry: EntryPoint, given: dict[str, str], overrides: Overrides,
          facts: Facts, done: dict[str, Step], target: str) -> Step:
    values, extras, paths = _values(entry, given, facts, spec.root, target)
    # Where each input is in the workspace, and what it is: the pin when facts have it.
    local = {n: facts.data[n].local if n in facts.data else spec.data[n].path for n in entry.data}
    pins = {n: facts.data[n].to_json() if n in facts.data else _declared(spec.data[n])
            for n in entry.data}
    quoted = {name: shlex.quote(text) for name, text in values.items()}
    quoted.update({f"data.{name}": shlex.quote(path) for name, path in local.items()})
    command = " ".join([template.render(list(entry.template), quoted)]
                       + [f"--{k} {shlex.quote(v)}" for k, v in extras.items()])
    resources = entry.resources.over(spec.resources)
    env = {"MLPROJECT_ENTRY_POINT": entry.name}
    env.update({f"MLPROJECT_DATA_{name.upper().replace('-', '_')}": path
                for name, path in local.items()})
    if resources.cpu is not None:
        env.update({var: str(max(1, int(resources.cpu))) for var in THREAD_VARIABLES})
    environment = _environment(spec, entry, overrides, facts)
    code = facts.code.to_json(exclude=_written(spec))
    declared = None if environment.key else spec.environments[environment.name].to_json()
    fingerprint = canonical_digest({
        "fingerprint": FINGERPRINT_VERSION, "format": spec.format, "entry_point": entry.name,
        "command": command, "environment": environment.key or declared, "data": pins,
        "code": code["digest"], "needs": [done[n].fingerprint for n in entry.needs],
    })
    return Step(
        entry_point=entry.name, command=command, parameters={**values, **extras},
        environment=environment, resources=resources, env=env, needs=entry.needs,
        outputs=entry.outputs, metrics=entry.metrics, data=pins, code=code,
        fingerprint=fingerprint, paths=paths,
    )
