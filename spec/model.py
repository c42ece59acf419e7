"""The typed, immutable model of an MLproject file. Nothing downstream of `load` sees raw YAML."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from mlproject.spec.errors import Problem
from mlproject.spec.template import Placeholder

EnvKind = Literal["python", "conda", "docker"]


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str  # canonical: string, int, float, bool, path, uri
    default: str | None  # as text, the way MLflow str()s it; None: the parameter is required
    description: str | None = None


@dataclass(frozen=True)
class Resources:
    cpu: float | None = None
    memory: int | None = None  # bytes
    gpu: int | None = None
    timeout: float | None = None  # seconds

    def over(self, base: Resources) -> Resources:
        """These resources, falling back to `base` for what they leave unset."""
        return Resources(**{f.name: getattr(self, f.name) if getattr(self, f.name) is not None
                            else getattr(base, f.name) for f in fields(self)})

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Environment:
    name: str
    kind: EnvKind
    python: str | None = None  # requested version
    file: str | None = None  # requirements, python_env.yaml or environment.yml, relative to the root
    lock: str | None = None
    image: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)  # docker volumes, environment, ...

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "options"}
        out["options"] = dict(self.options)
        return out


@dataclass(frozen=True)
class DataInput:
    name: str
    path: str
    rev: str | None = None
    repo: str | None = None
    md5: str | None = None


@dataclass(frozen=True)
class Gate:
    metric: str
    min: float | None = None
    max: float | None = None
    not_worse_than: str | None = None
    tolerance: float = 0.0  # an amount of the metric; with `relative`, a fraction of the base value
    direction: Literal["higher", "lower"] = "higher"
    relative: bool = False  # `tolerance: 2%` in the file: 0.02 of the base value's magnitude


@dataclass(frozen=True)
class Model:
    name: str
    path: str  # relative to the project directory, as written (normalized)
    entry_point: str  # the entry point that writes it
    output: str  # the declared output of that entry point that is, or holds, the model
    description: str | None = None
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class EntryPoint:
    name: str
    command: str
    template: tuple[str | Placeholder, ...]
    parameters: Mapping[str, Parameter]  # in the file's order, which MLflow keeps
    environment: str | None = None  # a key of Spec.environments
    data: tuple[str, ...] = ()
    resources: Resources = Resources()
    needs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    metrics: str | None = None  # the metrics file
    series: str | None = None  # `metrics: {file, series}`: per-epoch values, for plots
    gates: tuple[Gate, ...] = ()


@dataclass(frozen=True)
class Spec:
    file: str  # absolute path of the MLproject file
    root: str  # absolute path of the project directory
    digest: str  # sha256 of the file's bytes
    name: str | None
    format: int
    environments: Mapping[str, Environment]
    default_environment: str | None
    data: Mapping[str, DataInput]
    resources: Resources
    entry_points: Mapping[str, EntryPoint]
    warnings: tuple[Problem, ...] = ()
    models: Mapping[str, Model] = field(default_factory=dict)  # in the file's order
    sweeps: Mapping[str, Sweep] = field(default_factory=dict)  # in the file's order

    def no_entry_point(self, name: str) -> str:
        """The one message for an entry point the file does not declare."""
        import os

        return (f"no entry point {name!r} in {os.path.basename(self.file)} "
                f"(declared: {', '.join(self.entry_points)})")


@dataclass(frozen=True)
class Distribution:
    """Where a random point's value of one parameter is drawn from."""
    kind: Literal["uniform", "loguniform", "randint", "choice"]
    values: tuple[Any, ...]  # [low, high], or the choices as text


@dataclass(frozen=True)
class Sweep:
    """A sweep of an entry point's parameters: a grid (every combination), or `n` random points
    of a space drawn with `seed`. Values are text, as `-P` gives them, each checked against its
    parameter's type when the file was read."""
    name: str | None  # None: given on the command line
    entry_point: str
    fixed: Mapping[str, str] = field(default_factory=dict)
    grid: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    space: Mapping[str, Distribution] = field(default_factory=dict)
    n: int = 0
    seed: int = 0
    metric: str | None = None
    goal: Literal["minimize", "maximize"] = "minimize"
    jobs: int = 1
    max_failures: int | None = None
