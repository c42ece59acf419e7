"""Spec + the user's overrides + gathered facts -> Plan. Pure: no process, no file, no network."""
from __future__ import annotations

import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mlproject.runner.facts import Facts, closure
from mlproject.runner.plan import EnvChoice, Plan, Step, make_basis
from mlproject.runner.util.hashing import canonical_digest
from mlproject.spec import params, template
from mlproject.spec.model import DataInput, EntryPoint, Spec

FINGERPRINT_VERSION = 4  # 2: upstream outputs chained by hash, path parameters hashed;
# 3: path parameters inside the project enter the command relative to it (no root in it);
# 4: the code digest by content (Git blob ids), the same committed or not; mlproject.lock left out
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "NUMEXPR_NUM_THREADS", "NUMEXPR_MAX_THREADS", "VECLIB_MAXIMUM_THREADS")
_EXTRA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


class ResolveError(Exception):
    """The user's request does not fit the spec (a usage error, exit code 2)."""


@dataclass(frozen=True)
class Overrides:
    entry_point: str = "main"
    params: tuple[str, ...] = ()  # `-P name=value`, as typed
    env_manager: str | None = None  # "local": the current interpreter, whatever is declared;
    # uv, virtualenv: a conda file built as a uv environment; conda: never translated


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
        raise ResolveError(spec.no_entry_point(target))
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
    if facts.data_pending:
        notes.append(f"data {', '.join(facts.data_pending)} not pinned yet: the fingerprints of "
                     "the steps that read it are taken again when `run` has fetched it")
    return Plan(spec.root, spec.file, spec.digest, spec.name, target, tuple(steps.values()),
                tuple(notes), overrides.env_manager)


def _values(entry: EntryPoint, given: dict[str, str], facts: Facts, root: str,
            target: str) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """(declared values, undeclared values, path parameters) as text, checked against types."""
    values: dict[str, str] = {}
    paths: dict[str, str] = {}
    missing = []
    for name, param in entry.parameters.items():
        if name in given:
            text, base = given[name], facts.cwd
            why = params.unfit_text(text) or params.type_error(param.type, text)
            if why:
                raise ResolveError(f"parameter {name} ({param.type}): {text!r}: {why}")
        elif param.default is not None:
            text, base = param.default, root
        else:
            missing.append(f"{name} ({param.type})")
            continue
        text = params.canonical_text(param.type, text)  # `True` and `true` are one value
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
    for name, text in extras.items():
        if not _EXTRA_NAME.fullmatch(name):
            raise ResolveError(f"-P {name}: not a valid parameter name")
        why = params.unfit_text(text)
        if why:
            raise ResolveError(f"-P {name}: {text!r}: {why}")
    return values, extras, paths


def _declared(data: DataInput) -> dict[str, Any]:
    return {"name": data.name, "path": data.path, "rev": data.rev, "repo": data.repo, "md5": data.md5}


def _local(data: DataInput) -> str:
    """Where an input not pinned yet will be in the workspace (as DataPin.local says)."""
    if data.repo is None:
        return data.path
    from mlproject.runner.data.pins import FOREIGN_DIR

    return f"{FOREIGN_DIR}/{data.name}/{data.path.rstrip('/').rsplit('/', 1)[-1]}"


def _relative(path: str, root: str) -> str:
    """A path parameter as the fingerprint takes it: relative to the project when inside it."""
    if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
        return os.path.relpath(path, root)
    return path


def _written(spec: Spec) -> list[str]:
    """Paths the project's steps write: results, not code, whichever step declares them."""
    paths = [out for e in spec.entry_points.values() for out in e.outputs]
    return paths + [f for e in spec.entry_points.values() for f in (e.metrics, e.series) if f]


def _environment(spec: Spec, entry: EntryPoint, overrides: Overrides, facts: Facts) -> EnvChoice:
    if overrides.env_manager == "local" or entry.environment is None:
        # What a step without a declared environment imports: the interpreter and its
        # installed distributions (a `pip install` between two runs moves the fingerprint).
        key = canonical_digest({"kind": "local", "python": facts.interpreter,
                                "version": facts.python_version, "platform": facts.platform,
                                "distributions": list(facts.distributions)})
        return EnvChoice("local", "local", key, facts.interpreter, True,
                         data={"interpreter": facts.interpreter, "version": facts.python_version,
                               "platform": facts.platform})
    fact = facts.envs.get(entry.environment)
    if fact is None:  # facts gathered without environments: say what is declared
        env = spec.environments[entry.environment]
        return EnvChoice(env.name, env.kind, None, str(env.image or env.file or env.python), False)
    return EnvChoice(fact.name, fact.kind, fact.recipe.key if fact.recipe else None, fact.detail,
                     fact.ready, fact.error, dict(fact.data), fact.pending)


def _command(entry: EntryPoint, values: dict[str, str], local: dict[str, str],
             extras: dict[str, str]) -> str:
    """The template rendered (each value quoted for its shell context), then undeclared
    values as `--name value`, as MLflow appends them."""
    for name, path in local.items():
        why = params.unfit_text(path)
        if why:
            raise ResolveError(f"data {name}: path {path!r} {why}")
    command = template.render(entry.template, {**values, **{f"data.{n}": p for n, p in local.items()}})
    if not extras:
        return command
    from mlproject.spec import shell  # only here: where the command ends

    end = shell.analyze(entry.template)
    if end.tail:
        raise ResolveError(f"-P {next(iter(extras))}: entry point {entry.name!r} declares no such "
                           f"parameter, and its command ends inside {end.tail}, where an "
                           "appended `--name value` would not be arguments: declare it")
    # Before a final newline: appended after it, `--name value` would be a command of its own.
    command = command[:len(command) - end.trim]
    return " ".join([command] + [f"--{k} {shlex.quote(v)}" for k, v in extras.items()])


def _step(spec: Spec, entry: EntryPoint, given: dict[str, str], overrides: Overrides,
          facts: Facts, done: dict[str, Step], target: str) -> Step:
    values, extras, paths = _values(entry, given, facts, spec.root, target)
    # Where each input is in the workspace, and what it is: the pin when facts have it, else
    # what is declared, and what `run` would fetch to pin it.
    local = {n: facts.data[n].local if n in facts.data else _local(spec.data[n])
             for n in entry.data}
    pins = {n: facts.data[n].to_json() if n in facts.data else _declared(spec.data[n])
            for n in entry.data}
    for name, pin in pins.items():
        if name in facts.data_pending:
            pin["pending"] = facts.data_pending[name]
    command = _command(entry, values, local, extras)
    # The command the fingerprint takes: path parameters inside the project relative to it,
    # so that the same plan made in another clone has the same fingerprints.
    portable = command if not paths else _command(entry, {
        **values, **{n: _relative(p, spec.root) for n, p in paths.items()}}, local, extras)
    resources = entry.resources.over(spec.resources)
    env = {"MLPROJECT_ENTRY_POINT": entry.name}
    env.update({f"MLPROJECT_DATA_{name.upper().replace('-', '_')}": path
                for name, path in local.items()})
    if resources.cpu is not None:
        env.update({var: str(max(1, int(resources.cpu))) for var in THREAD_VARIABLES})
    environment = _environment(spec, entry, overrides, facts)
    code = facts.code.to_json(exclude=_written(spec))
    # Resolved at run time (no lock): what the resolution is made from, the same under `plan`
    # and `run`; the pins installed are recorded in the run.
    unlocked = facts.env_inputs.get(environment.name) if environment.kind == "python" else None
    declared = None if environment.key or unlocked else spec.environments[environment.name].to_json()
    fixed = {
        "fingerprint": FINGERPRINT_VERSION, "format": spec.format, "entry_point": entry.name,
        "command": portable, "environment": unlocked or environment.key or declared,
        "data": {n: {"path": local[n], "md5": pin.get("md5")} for n, pin in pins.items()},
        "code": code["digest"],
    }
    covered, missed = _coverage(environment, code, facts, unlocked, entry)
    own = [*entry.outputs, *([entry.metrics] if entry.metrics else [])]
    basis = make_basis(fixed, spec.root, paths, own,
                       [done[n] for n in entry.needs], covered, missed)
    return Step(
        entry_point=entry.name, command=command, parameters={**values, **extras},
        environment=environment, resources=resources, env=env, needs=entry.needs,
        outputs=entry.outputs, metrics=entry.metrics, data=pins, code=code,
        fingerprint=basis.digest(), basis=basis, paths=paths,
    )


def _coverage(environment: EnvChoice, code: dict[str, Any], facts: Facts, unlocked: str | None,
              entry: EntryPoint) -> tuple[list[str], list[str]]:
    """What the fixed part of a fingerprint covers, and what it misses, in words for `plan`."""
    from mlproject.runner.envs.kinds import kind

    covered = ["command", "code (git tree + uncommitted changes)" if code["kind"] == "git"
               else "code (every file of the project)"]
    entry_kind = kind(environment.kind)
    missed = list(entry_kind.misses)
    if environment.kind == "local":
        covered.append(f"environment (local {environment.detail} {facts.python_version}, "
                       f"{len(facts.distributions)} installed distributions)")
    elif unlocked:
        covered.append(f"environment ({environment.name}: interpreter and requirements; the "
                       "pins resolved from them are recorded in the run)")
    else:
        covered.append(entry_kind.coverage(environment.name, environment.detail))
    if entry.data:
        covered.append(f"data pins {', '.join(entry.data)} (verified right before the step)")
    return covered, missed
