"""The plan: immutable values saying exactly what would run, and why it is what it is."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlproject.spec.model import Resources


@dataclass(frozen=True)
class EnvChoice:
    name: str  # "local", or the name of a declared environment
    kind: str  # local, python, conda, docker
    key: str | None  # hash of what is installed; None until the kind can be built
    detail: str  # the interpreter, the file or the image
    ready: bool
    problem: str | None = None  # why it cannot be built here (`run` refuses; `plan` shows it)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "key": self.key, "detail": self.detail,
                "ready": self.ready, "problem": self.problem}


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
    data: Mapping[str, Mapping[str, Any]]
    code: Mapping[str, Any]
    fingerprint: str
    paths: Mapping[str, str] = field(default_factory=dict)  # path parameters that must exist

    def to_json(self) -> dict[str, Any]:
        return {
            "entry_point": self.entry_point, "command": self.command,
            "parameters": dict(self.parameters), "environment": self.environment.to_json(),
            "resources": self.resources.to_json(), "env": dict(self.env), "needs": list(self.needs),
            "outputs": list(self.outputs), "metrics": self.metrics,
            "data": {k: dict(v) for k, v in self.data.items()}, "code": dict(self.code),
            "fingerprint": self.fingerprint,
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

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "mlproject.plan/1", "project": self.project, "spec": self.spec_file,
            "spec_digest": self.spec_digest, "name": self.name, "target": self.target,
            "steps": [s.to_json() for s in self.steps], "notes": list(self.notes),
        }
