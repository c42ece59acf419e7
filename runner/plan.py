"""The plan: immutable values saying exactly what would run, and why it is what it is.

A plan is a complete value: `Plan.to_json()` ("mlproject.plan/2") holds everything a machine
needs to execute it (the environment as data, the data pins, the command, ...), and
`Plan.from_json` (planfile.py) reads it back strictly. Paths: the plan keeps them as they were
where it was made (absolute, with `project`, the root they are under); `planfile.rebase` moves
every one of them under the root of the checkout that executes it, and `run --plan` checks
the result against a plan made there (see planfile.py). Fingerprints never hold the root."""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from mlproject.runner.util.hashing import canonical_digest
from mlproject.spec.model import Resources

if TYPE_CHECKING:
    from mlproject.runner.data.pins import DataPin

PLAN_FORMAT = "mlproject.plan/2"  # 2: the environment as data, paths, the whole basis, pending


@dataclass(frozen=True)
class EnvChoice:
    name: str  # "local", or the name of a declared environment
    kind: str  # local, python, conda, docker
    key: str | None  # hash of what is installed; None until the kind can be built
    detail: str  # the interpreter, the file or the image
    ready: bool
    problem: str | None = None  # why it cannot be built here (`run` refuses; `plan` shows it)
    # what its kind rebuilds the recipe from on the executing machine (envs/kinds.py): the
    # interpreter asked for and found, the pins with hashes; the conda packages; the image
    data: Mapping[str, Any] = field(default_factory=dict)
    pending: str | None = None  # not known yet: what `run` would do (and how to do it ahead)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "key": self.key, "detail": self.detail,
                "ready": self.ready, "problem": self.problem, "pending": self.pending,
                "data": dict(self.data)}


@dataclass(frozen=True)
class Basis:
    """What a step's fingerprint digests. `fixed` is known when the plan is resolved; what the
    step receives from the workspace (`paths`, `upstream`) is read after: by `plan` as the
    workspace is now, by `run` right before the step, from what its upstream steps left there
    (outputs chained by their hashes, as `dvc repro` does: an upstream step that re-runs and
    writes the same bytes leaves its dependants up to date)."""
    fixed: Mapping[str, Any]
    hashed: Mapping[str, str] = field(default_factory=dict)  # path parameter -> path read
    # the steps it needs: what they wrote is what it receives (a step's own needs chain theirs)
    chained: tuple[str, ...] = ()
    covered: tuple[str, ...] = ()
    not_covered: tuple[str, ...] = ()
    paths: Mapping[str, str | None] = field(default_factory=dict)  # parameter -> md5; None: absent
    # upstream step -> {output: md5 or None}, or its fingerprint where it declares no outputs
    upstream: Mapping[str, Any] = field(default_factory=dict)

    def digest(self) -> str:
        return canonical_digest({**self.fixed, "paths": dict(self.paths),
                                 "upstream": dict(self.upstream)})

    def to_json(self) -> dict[str, Any]:
        return {"covered": list(self.covered), "not_covered": list(self.not_covered),
                "paths": dict(self.paths), "upstream": dict(self.upstream),
                "fixed": dict(self.fixed), "hashed": dict(self.hashed),
                "chained": list(self.chained)}


@dataclass(frozen=True)
class Step:
    entry_point: str
    command: str  # after substitution, before an environment or backend wraps it
    parameters: Mapping[str, str]  # final values as text, undeclared ones included
    environment: EnvChoice
    resources: Resources
    env: Mapping[str, str]  # variables set for the step (run-specific ones are added at run time)
    needs: tuple[str, ...]
    outputs: tuple[str, ...]
    metrics: str | None
    # input -> its pin (DataPin's fields), or where it is not pinned yet, what is declared and
    # what `run` would fetch ("pending")
    data: Mapping[str, Mapping[str, Any]]
    code: Mapping[str, Any]
    fingerprint: str  # basis.digest()
    basis: Basis
    paths: Mapping[str, str] = field(default_factory=dict)  # path parameters that must exist

    def received(self, paths: Mapping[str, str | None], upstream: Mapping[str, Any]) -> Step:
        """This step, its fingerprint taken again with what it receives from the workspace."""
        basis = replace(self.basis, paths=dict(paths), upstream=dict(upstream))
        return replace(self, basis=basis, fingerprint=basis.digest())

    def pins(self) -> list[DataPin]:
        """The pins of the data this step reads (those not pending)."""
        from mlproject.runner.data.pins import DataPin

        return [DataPin(**dict(pin)) for pin in self.data.values() if "pending" not in pin]

    @property
    def pending(self) -> list[str]:
        """What `run` must acquire before this step is complete, in words."""
        said = [f"environment {self.environment.name}: {self.environment.pending}"
                ] if self.environment.pending else []
        return said + [f"data {n}: {pin['pending']}" for n, pin in self.data.items()
                       if "pending" in pin]

    def to_json(self) -> dict[str, Any]:
        return {
            "entry_point": self.entry_point, "command": self.command,
            "parameters": dict(self.parameters), "environment": self.environment.to_json(),
            "resources": self.resources.to_json(), "env": dict(self.env), "needs": list(self.needs),
            "outputs": list(self.outputs), "metrics": self.metrics,
            "data": {k: dict(v) for k, v in self.data.items()}, "code": dict(self.code),
            "fingerprint": self.fingerprint, "fingerprint_basis": self.basis.to_json(),
            "paths": dict(self.paths),
        }


@dataclass(frozen=True)
class Plan:
    project: str  # the project's root directory
    spec_file: str
    spec_digest: str
    name: str | None
    target: str
    steps: tuple[Step, ...]
    notes: tuple[str, ...] = ()
    env_manager: str | None = None  # --env-manager: local, uv, virtualenv, conda (None: declared)
    # where PATH was a Git URL: {"url" (credentials redacted), "version" (-v as given, None: the
    # remote's HEAD), "commit" (full), "subdirectory" ('' for the root)}; `project` is the
    # project in the work tree of that commit. In the JSON only where there is one.
    source: Mapping[str, Any] | None = None

    @property
    def pending(self) -> list[str]:
        """What `run` must acquire before the plan is complete (each once), in words."""
        return list(dict.fromkeys(p for s in self.steps for p in s.pending))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": PLAN_FORMAT, "project": self.project, "spec": self.spec_file,
            "spec_digest": self.spec_digest, "name": self.name, "target": self.target,
            "env_manager": self.env_manager, "steps": [s.to_json() for s in self.steps],
            "notes": list(self.notes), "pending": self.pending,
            **({"source": dict(self.source)} if self.source is not None else {}),
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "the plan") -> Plan:
        """A plan read back from its JSON form, strictly (planfile.PlanFileError otherwise)."""
        from mlproject.runner.planfile import decode

        return decode(data, where)


# What no fingerprint can see: said in every plan, so that nobody reads more into "up to date".
NEVER_COVERED = ("files the command reads that are not declared (as data, outputs of needed "
                 "steps, or path parameters)", "environment variables", "the network",
                 "the clock")


def inside(path: str, bases: Iterable[str]) -> bool:
    """Whether `path` is one of `bases` or below one (normalized absolute paths)."""
    return any(path == base or path.startswith(base.rstrip(os.sep) + os.sep) for base in bases)


def make_basis(fixed: Mapping[str, Any], root: str, paths: Mapping[str, str],
               written: Sequence[str], upstream: Sequence[Step], covered: Sequence[str],
               not_covered: Sequence[str] = ()) -> Basis:
    """The basis of a step: its fixed inputs, which of its path parameters are hashed, the
    upstream steps it chains, and what that does and does not cover. `written`: the step's own
    outputs and metrics file, relative to `root`; `paths`: its path parameters, absolute."""
    root = os.path.normpath(root)
    own = [os.path.normpath(os.path.join(root, w)) for w in written]
    chained = [os.path.normpath(os.path.join(root, out)) for s in upstream for out in s.outputs]
    hashed: dict[str, str] = {}
    through: list[str] = []
    missed: list[str] = []
    for name, path in sorted(paths.items()):
        if inside(path, own):
            missed.append(f"path parameter {name} (an output of this step, not an input)")
        elif inside(path, chained):
            through.append(name)
        elif inside(root, [path]):
            missed.append(f"path parameter {name} ({path} contains the project: not hashed; "
                          "the project's code in it is covered, its ignored files are not)")
        elif any(inside(w, [path]) for w in own):
            missed.append(f"path parameter {name} ({path} holds this step's outputs: not "
                          "hashed; the code state covers what Git sees in it)")
        else:
            hashed[name] = path
    said = list(covered)
    if hashed:
        said.append(f"path parameters {', '.join(hashed)} (their content)")
    if through:
        said.append(f"path parameters {', '.join(through)} (through upstream outputs)")
    made = [f"{s.entry_point} ({', '.join(s.outputs)})" for s in upstream if s.outputs]
    if made:
        said.append(f"upstream outputs: {'; '.join(made)}")
    said.extend(f"upstream step {s.entry_point} (no outputs declared: its fingerprint)"
                for s in upstream if not s.outputs)
    return Basis(fixed, hashed, tuple(s.entry_point for s in upstream), tuple(said),
                 (*not_covered, *missed, *NEVER_COVERED))
