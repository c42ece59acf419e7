"""A plan as a file: read back strictly, moved to the checkout that executes it, and checked
against the world there (`mlproject plan --json > plan.json`, then `mlproject run --plan
plan.json` on another machine or in another clone).

Paths. A plan holds paths as they were where it was made, with `project`, the root they are
under. `plancheck.rebase` moves each path inside that root (path parameters, the files a step's
fingerprint hashes, the spec file, and the same text in the command) under the executing
checkout's root; paths outside it stay as they are. Fingerprints never hold the root (path
parameters inside the project enter them relative to it), so a plan made in one clone has the
fingerprints of the same plan made in another. `run --plan` resolves the plan again where it
runs and refuses it, saying what moved (old -> new), where the code, an environment, a data
pin or the command no longer matches: the rebased command is thereby checked too.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from mlproject.runner.plan import PLAN_FORMAT, Basis, EnvChoice, Plan, Step
from mlproject.spec.model import Resources


class PlanFileError(Exception):
    """A plan file that cannot be read, or that no longer fits the world (exit code 2)."""


MAX_PLAN_BYTES = 64 << 20  # a plan of thousands of steps is a few MiB


def read(path: str) -> Plan:
    """The plan in `path` ("-": standard input); PlanFileError names the file and what is wrong."""
    import os
    import stat
    import sys

    try:
        if path == "-":  # a pipe: read no more than a plan can be
            raw = sys.stdin.buffer.read(MAX_PLAN_BYTES + 1)
        else:  # never blocks on a FIFO, never reads a device or a directory
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as handle:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise PlanFileError(f"{path}: not a plan: not a regular file")
                raw = handle.read(MAX_PLAN_BYTES + 1)
    except OSError as exc:
        raise PlanFileError(f"{path}: cannot read the plan: {exc.strerror or exc}") from None
    if len(raw) > MAX_PLAN_BYTES:
        raise PlanFileError(f"{path}: not a plan: larger than {MAX_PLAN_BYTES >> 20} MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PlanFileError(f"{path}: not a plan: not UTF-8 text ({exc.reason})") from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise PlanFileError(f"{path}: not a plan: not JSON ({exc}); write one with "
                            "`mlproject plan --json > FILE`") from None
    return decode(data, path)


class _Shape:
    """Checks one JSON value against the shape the plan format gives it, naming where it is."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, at: str, what: str) -> PlanFileError:
        return PlanFileError(f"{self.where}: {at}: {what}")

    def obj(self, value: Any, at: str, keys: tuple[str, ...]) -> dict[str, Any]:
        if type(value) is not dict:
            raise self.fail(at, "expected an object")
        missing = [k for k in keys if k not in value]
        extra = [k for k in value if k not in keys]
        if missing or extra:
            said = ([f"missing {', '.join(missing)}"] if missing else []) + (
                [f"unknown {', '.join(extra)}"] if extra else [])
            raise self.fail(at, f"not the fields of {PLAN_FORMAT} ({'; '.join(said)})")
        return value

    def typed(self, value: Any, at: str, *kinds: type) -> Any:
        if type(value) not in kinds or (type(value) is bool and bool not in kinds):
            names = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
            raise self.fail(at, f"expected {names}, not {json.dumps(value)[:60]}")
        return value

    def text(self, value: Any, at: str, *, null: bool = False) -> Any:
        return self.typed(value, at, str, *((type(None),) if null else ()))

    def texts(self, value: Any, at: str) -> tuple[str, ...]:
        items = self.typed(value, at, list)
        return tuple(self.text(v, f"{at}[{i}]") for i, v in enumerate(items))

    def mapping(self, value: Any, at: str, item: Callable[[Any, str], Any]) -> dict[str, Any]:
        found = self.typed(value, at, dict)
        return {k: item(v, f"{at}.{k}") for k, v in found.items()}


_STEP_KEYS = ("entry_point", "command", "parameters", "environment", "resources", "env", "needs",
              "outputs", "metrics", "data", "code", "fingerprint", "fingerprint_basis", "paths")
_PLAN_KEYS = ("format", "project", "spec", "spec_digest", "name", "target", "env_manager",
              "steps", "notes", "pending")
_ENV_KEYS = ("name", "kind", "key", "detail", "ready", "problem", "pending", "data")
_BASIS_KEYS = ("covered", "not_covered", "paths", "upstream", "fixed", "hashed", "chained")


def decode(data: Any, where: str = "the plan") -> Plan:
    """The Plan of a JSON value, every field checked; PlanFileError says where it does not fit."""
    shape = _Shape(where)
    if type(data) is dict and data.get("format") != PLAN_FORMAT:
        found = data.get("format")
        if isinstance(found, str) and found.startswith("mlproject.plan/"):
            raise shape.fail("format", f"{found} is not {PLAN_FORMAT}, the format this mlproject "
                             "reads: make the plan again with this version")
        raise shape.fail("format", f"expected {PLAN_FORMAT!r}: not a plan of mlproject")
    source = _source(shape, data.get("source")) if type(data) is dict and "source" in data else None
    top = shape.obj({k: v for k, v in data.items() if k != "source"} if source else data, "plan",
                    _PLAN_KEYS)
    steps = tuple(_step(shape, s, f"steps[{i}]")
                  for i, s in enumerate(shape.typed(top["steps"], "steps", list)))
    if not steps:
        raise shape.fail("steps", "a plan has at least one step")
    names = [s.entry_point for s in steps]
    for step in steps:
        unknown = [n for n in step.needs if n not in names[:names.index(step.entry_point)]]
        if unknown:
            raise shape.fail(f"steps[{names.index(step.entry_point)}].needs",
                             f"{', '.join(unknown)} is not a step before it")
    if top["target"] not in names:
        raise shape.fail("target", f"{top['target']!r} is not one of its steps")
    shape.texts(top["pending"], "pending")  # derived from the steps: checked, not kept
    env_manager = shape.text(top["env_manager"], "env_manager", null=True)
    if env_manager not in (None, "local", "uv", "virtualenv", "conda"):
        raise shape.fail("env_manager", f"{env_manager!r} is not local, uv, virtualenv, conda "
                         "or null")
    return Plan(shape.text(top["project"], "project"), shape.text(top["spec"], "spec"),
                shape.text(top["spec_digest"], "spec_digest"),
                shape.text(top["name"], "name", null=True), shape.text(top["target"], "target"),
                steps, shape.texts(top["notes"], "notes"), env_manager, source)


_SOURCE_TYPES: dict[str, tuple[type, ...]] = {
    "url": (str,), "version": (str, type(None)), "commit": (str,), "subdirectory": (str,)}


def _source(shape: _Shape, value: Any) -> dict[str, Any]:
    """The Git URL the plan's project was checked out from (optional: plans of a local PATH
    have none)."""
    found = shape.obj(value, "source", tuple(_SOURCE_TYPES))
    for key, kinds in _SOURCE_TYPES.items():
        shape.typed(found[key], f"source.{key}", *kinds)
    return dict(found)


def _step(shape: _Shape, value: Any, at: str) -> Step:
    raw = shape.obj(value, at, _STEP_KEYS)
    env = shape.obj(raw["environment"], f"{at}.environment", _ENV_KEYS)
    kind = shape.text(env["kind"], f"{at}.environment.kind")
    from mlproject.runner.envs.base import EnvError
    from mlproject.runner.envs.kinds import kind as kind_of

    try:
        registered = kind_of(kind)
    except EnvError as exc:
        raise shape.fail(f"{at}.environment.kind", str(exc)) from None
    choice = EnvChoice(
        shape.text(env["name"], f"{at}.environment.name"), kind,
        shape.text(env["key"], f"{at}.environment.key", null=True),
        shape.text(env["detail"], f"{at}.environment.detail"),
        shape.typed(env["ready"], f"{at}.environment.ready", bool),
        shape.text(env["problem"], f"{at}.environment.problem", null=True),
        shape.typed(env["data"], f"{at}.environment.data", dict),
        shape.text(env["pending"], f"{at}.environment.pending", null=True))
    if choice.data and choice.key is not None:
        try:
            registered.check_data(choice.data)
        except EnvError as exc:
            raise shape.fail(f"{at}.environment.data", str(exc)) from None
    res = shape.obj(raw["resources"], f"{at}.resources", tuple(f.name for f in fields(Resources)))
    resources = Resources(
        cpu=shape.typed(res["cpu"], f"{at}.resources.cpu", int, float, type(None)),
        memory=shape.typed(res["memory"], f"{at}.resources.memory", int, type(None)),
        gpu=shape.typed(res["gpu"], f"{at}.resources.gpu", int, type(None)),
        timeout=shape.typed(res["timeout"], f"{at}.resources.timeout", int, float, type(None)))
    basis_raw = shape.obj(raw["fingerprint_basis"], f"{at}.fingerprint_basis", _BASIS_KEYS)
    b = f"{at}.fingerprint_basis"
    basis = Basis(
        shape.typed(basis_raw["fixed"], f"{b}.fixed", dict),
        shape.mapping(basis_raw["hashed"], f"{b}.hashed", shape.text),
        shape.texts(basis_raw["chained"], f"{b}.chained"),
        shape.texts(basis_raw["covered"], f"{b}.covered"),
        shape.texts(basis_raw["not_covered"], f"{b}.not_covered"),
        shape.mapping(basis_raw["paths"], f"{b}.paths",
                      lambda v, w: shape.text(v, w, null=True)),
        shape.typed(basis_raw["upstream"], f"{b}.upstream", dict))
    data = shape.mapping(raw["data"], f"{at}.data", lambda v, w: _data(shape, v, w))
    fingerprint = shape.text(raw["fingerprint"], f"{at}.fingerprint")
    if basis.digest() != fingerprint:
        raise shape.fail(f"{at}.fingerprint", "does not match its basis: the file was edited")
    return Step(
        entry_point=shape.text(raw["entry_point"], f"{at}.entry_point"),
        command=shape.text(raw["command"], f"{at}.command"),
        parameters=shape.mapping(raw["parameters"], f"{at}.parameters", shape.text),
        environment=choice, resources=resources,
        env=shape.mapping(raw["env"], f"{at}.env", shape.text),
        needs=shape.texts(raw["needs"], f"{at}.needs"),
        outputs=shape.texts(raw["outputs"], f"{at}.outputs"),
        metrics=shape.text(raw["metrics"], f"{at}.metrics", null=True),
        data=data, code=shape.typed(raw["code"], f"{at}.code", dict),
        fingerprint=fingerprint, basis=basis,
        paths=shape.mapping(raw["paths"], f"{at}.paths", shape.text))


_PIN_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,), "path": (str,), "repo": (str, type(None)), "rev": (str, type(None)),
    "sha": (str,), "md5": (str,), "size": (int, type(None)), "nfiles": (int, type(None)),
    "dvc": (int,)}
_PENDING_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,), "path": (str,), "repo": (str, type(None)), "rev": (str, type(None)),
    "md5": (str, type(None)), "pending": (str,)}


def _data(shape: _Shape, value: Any, at: str) -> dict[str, Any]:
    types = _PENDING_TYPES if type(value) is dict and "pending" in value else _PIN_TYPES
    found = shape.obj(value, at, tuple(types))
    for key, kinds in types.items():
        shape.typed(found[key], f"{at}.{key}", *kinds)
    return found
