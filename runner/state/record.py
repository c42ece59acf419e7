"""The run record as a value: what one step's run was, from its first moment to its last.

A record is never updated in place: each moment of a run (started, environment built, ended)
makes a new RunRecord from the last with `dataclasses.replace`, and `to_json` is what run.json
holds. Its shape is published as `record.schema.json` (`mlproject schema --record`), and reading
checks a record against that very file (schemacheck), so the two cannot drift apart.

Formats read: mlproject.run/5 (written now), mlproject.run/4 (the same, without `mlflow` and
`run_name`, which MLflow parity added: read as null), mlproject.run/3 (the same, without `sweep`,
`series`, `logged_params` and `artifacts`, which tracking and sweeps added: read as null and
empty), mlproject.run/2 (as /3, without `handle`,
`submission`, `settings` and `engine`, which backends other than local added: read as null and
empty) and mlproject.run/1 (written before the schema was published: as /2, save that
`metrics_error` and the environment's `prefix`, `built_now` and `recipe` were left out when they
had no value; they are read as null).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from mlproject.runner.envs.kinds import EnvKind
from mlproject.runner.state import schemacheck
from mlproject.runner.state.status import Status

RECORD_FORMAT = "mlproject.run/5"
FORMAT_V1 = "mlproject.run/1"
FORMAT_V2 = "mlproject.run/2"
FORMAT_V3 = "mlproject.run/3"
FORMAT_V4 = "mlproject.run/4"
FORMATS_READ = (FORMAT_V1, FORMAT_V2, FORMAT_V3, FORMAT_V4, RECORD_FORMAT)
_OLDER = (FORMAT_V1, FORMAT_V2, FORMAT_V3, FORMAT_V4)
SCHEMA_PATH = Path(__file__).with_name("record.schema.json")


def schema_text() -> bytes:
    return SCHEMA_PATH.read_bytes()


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(schema_text())
    return loaded


@dataclass(frozen=True)
class Host:
    """The mlproject process that wrote the record: `pid` with `pid_start` tells whether it
    still lives (a record left running by a dead one reads as crashed)."""
    hostname: str
    pid: int
    pid_start: str | None
    platform: str
    python: str


@dataclass(frozen=True)
class ResourceUse:
    requested: Mapping[str, Any]  # the plan's resources
    enforced: Mapping[str, str] = field(default_factory=dict)  # how each was honoured, in words
    peak_memory: int | None = None  # bytes


@dataclass(frozen=True)
class EnvironmentUse:
    """The step's environment as planned, and what was built for the run."""
    name: str
    kind: EnvKind
    planned: Mapping[str, Any]  # the plan's form of it, whole (name and kind included)
    prefix: str | None = None  # None: nothing is built (local, an image)
    built_now: bool | None = None
    recipe: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {**self.planned, "name": self.name, "kind": self.kind.value,
                "prefix": self.prefix, "built_now": self.built_now,
                "recipe": None if self.recipe is None else dict(self.recipe)}


_REALIZED = ("prefix", "built_now", "recipe")


@dataclass(frozen=True)
class RunRecord:
    id: str
    status: Status
    invocation: str  # the same for every step one `mlproject run` ran
    project: str
    spec: str
    spec_digest: str
    name: str | None
    entry_point: str
    started_at: str  # ISO 8601, UTC
    backend: str
    command: str
    parameters: Mapping[str, str]
    fingerprint: str
    code: Mapping[str, Any]
    environment: EnvironmentUse
    resources: ResourceUse
    data: Mapping[str, Mapping[str, Any]]
    metrics_file: str | None
    plan: Mapping[str, Any]
    mlproject_version: str
    host: Host
    ended_at: str | None = None
    duration: float | None = None
    exit_code: int | None = None
    signal: int | None = None
    reason: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    metrics_error: str | None = None
    outputs: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)
    log: str = "log.txt"
    handle: Mapping[str, Any] | None = None  # backends.base.Handle.to_json(), once submitted
    submission: Mapping[str, Any] | None = None  # backends.base.Submission.to_json()
    settings: Mapping[str, Any] = field(default_factory=dict)  # the backend's, in effect
    engine: Mapping[str, Any] = field(default_factory=dict)  # what the engine reported
    sweep: Mapping[str, Any] | None = None  # {id, name, index}: the sweep this run is a point of
    series: Mapping[str, list[list[Any]]] = field(default_factory=dict)  # logged: [step, value, t]
    logged_params: Mapping[str, str] = field(default_factory=dict)
    artifacts: tuple[Mapping[str, Any], ...] = ()  # {path (in the run directory), size}
    # where the step's MLflow wrote, the runs it made and their tags (tracking.mlflowstore)
    mlflow: Mapping[str, Any] | None = None
    run_name: str | None = None  # --run-name

    def to_json(self) -> dict[str, Any]:
        """The record as run.json holds it (format mlproject.run/5), keys in a reader's order."""
        host = self.host
        return {
            "format": RECORD_FORMAT, "id": self.id, "invocation": self.invocation,
            "project": self.project, "spec": self.spec, "spec_digest": self.spec_digest,
            "name": self.name, "entry_point": self.entry_point, "status": self.status.value,
            "started_at": self.started_at, "ended_at": self.ended_at, "duration": self.duration,
            "exit_code": self.exit_code, "signal": self.signal, "reason": self.reason,
            "backend": self.backend, "command": self.command,
            "parameters": dict(self.parameters), "fingerprint": self.fingerprint,
            "code": dict(self.code), "environment": self.environment.to_json(),
            "resources": {"requested": dict(self.resources.requested),
                          "enforced": dict(self.resources.enforced),
                          "peak_memory": self.resources.peak_memory},
            "data": {k: dict(v) for k, v in self.data.items()},
            "metrics_file": self.metrics_file, "metrics": dict(self.metrics),
            "metrics_error": self.metrics_error,
            "series": {k: [list(p) for p in v] for k, v in self.series.items()},
            "logged_params": dict(self.logged_params),
            "artifacts": [dict(a) for a in self.artifacts],
            "outputs": {k: None if v is None else dict(v) for k, v in self.outputs.items()},
            "plan": dict(self.plan), "mlproject_version": self.mlproject_version,
            "host": {"hostname": host.hostname, "pid": host.pid, "pid_start": host.pid_start,
                     "platform": host.platform, "python": host.python},
            "log": self.log,
            "handle": None if self.handle is None else dict(self.handle),
            "submission": None if self.submission is None else dict(self.submission),
            "settings": dict(self.settings), "engine": dict(self.engine),
            "sweep": None if self.sweep is None else dict(self.sweep),
            "mlflow": None if self.mlflow is None else dict(self.mlflow), "run_name": self.run_name,
        }


class RecordError(ValueError):
    """A run.json that is no run record this mlproject reads; the message says why."""


def problem_of(data: Any) -> str | None:
    """Why `data` (a parsed run.json) is not a record of a format this mlproject reads."""
    if not isinstance(data, dict):
        return "holds something other than a record (a JSON object)"
    fmt = data.get("format")
    why = schemacheck.problem(upgraded(data) if fmt in _OLDER else data, schema())
    if why and why.startswith("has format ") and isinstance(fmt, str):
        return (f"has format {schemacheck.shown_value(fmt)}, which this mlproject does not read (it "
                f"reads {', '.join(FORMATS_READ[:-1])} and {FORMATS_READ[-1]}): a newer mlproject "
                "wrote it?")
    return why


def upgraded(data: dict[str, Any]) -> dict[str, Any]:
    """A mlproject.run/1, /2, /3 or /4 record in the form of mlproject.run/5 (a shallow copy; `data`
    is kept)."""
    old = data.get("format")
    out = {**data, "format": RECORD_FORMAT}
    if old == FORMAT_V1:
        out.setdefault("metrics_error", None)
        env = out.get("environment")
        if isinstance(env, dict):
            out["environment"] = {**{k: None for k in _REALIZED}, **env}
    for key, empty in (("handle", None), ("submission", None), ("settings", {}), ("engine", {}),
                       ("sweep", None), ("series", {}), ("logged_params", {}), ("artifacts", []),
                         ("mlflow", None), ("run_name", None)):
        out.setdefault(key, empty)
    return out


def from_json(data: Any, checked: bool = False) -> RunRecord:
    """The record a parsed run.json holds, checked against the published schema (either format
    read; `checked`: the caller has just checked it); RecordError says what is wrong."""
    why = None if checked else problem_of(data)
    if why is not None:
        raise RecordError(why)
    if data.get("format") in _OLDER:
        data = upgraded(data)
    env = data["environment"]
    res = data["resources"]
    host = data["host"]
    return RunRecord(
        id=data["id"], status=Status(data["status"]), invocation=data["invocation"],
        project=data["project"], spec=data["spec"], spec_digest=data["spec_digest"],
        name=data["name"], entry_point=data["entry_point"], started_at=data["started_at"],
        backend=data["backend"], command=data["command"], parameters=data["parameters"],
        fingerprint=data["fingerprint"], code=data["code"],
        environment=EnvironmentUse(
            env["name"], EnvKind(env["kind"]),
            {k: v for k, v in env.items() if k not in _REALIZED},
            env["prefix"], env["built_now"], env["recipe"]),
        resources=ResourceUse(res["requested"], res["enforced"], res["peak_memory"]),
        data=data["data"], metrics_file=data["metrics_file"], plan=data["plan"],
        mlproject_version=data["mlproject_version"],
        host=Host(host["hostname"], host["pid"], host["pid_start"], host["platform"],
                  host["python"]),
        ended_at=data["ended_at"], duration=data["duration"], exit_code=data["exit_code"],
        signal=data["signal"], reason=data["reason"], metrics=data["metrics"],
        metrics_error=data["metrics_error"], outputs=data["outputs"], log=data["log"],
        handle=data["handle"], submission=data["submission"], settings=data["settings"],
        engine=data["engine"], sweep=data["sweep"], series=data["series"],
        logged_params=data["logged_params"], artifacts=tuple(data["artifacts"]),
        mlflow=data["mlflow"], run_name=data["run_name"],
    )
