"""A run record as the MLflow run it is exported as: a pure value, made without MLflow.

Decisions, so that an export never fails on what a step logged and reads the same every time:
- parameters: the entry point's `parameters` and what the code logged (`logged_params`) under
  their own names, as MLflow's own projects show them; a logged parameter that repeats a
  declared one with the same value is the same parameter, one with another value is exported as
  `logged.NAME` (MLflow refuses to change a parameter's value);
- metrics: each series point with its step, or, where the code gave none, its index in the
  series (MLflow's default of 0 for every point would draw the series as one point), at its own
  time; each final metric without a series once, at step 0, at the run's end;
- a name MLflow refuses is rewritten (names.py) and the mapping kept in the tag
  `mlproject.renamed` ({"param"|"metric"|"tag": {original: exported}}, JSON);
- a value past MLflow's length limit is cut, ending with a marker that says how long it was, and
  its name listed in the tag `mlproject.truncated`; the record itself, whole, goes along as the
  artifact mlproject-run.json.
"""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass

from mlproject.runner.export import names
from mlproject.runner.state.record import RunRecord
from mlproject.runner.state.status import Status

RUN_ID_TAG = "mlproject.run_id"  # what an earlier export of the same run is found by
STATUSES = {Status.SUCCEEDED: "FINISHED", Status.FAILED: "FAILED", Status.TIMEOUT: "FAILED",
            Status.OOM: "FAILED", Status.CRASHED: "FAILED", Status.CANCELLED: "KILLED",
            Status.INTERRUPTED: "KILLED"}


@dataclass(frozen=True)
class Limits:
    """Value lengths MLflow takes (mlflow.utils.validation of the installed client)."""
    param_value: int = 6000
    tag_value: int = 8000


@dataclass(frozen=True)
class Point:
    key: str
    value: float
    timestamp: int  # milliseconds since the epoch
    step: int


@dataclass(frozen=True)
class MlflowRun:
    run_name: str
    start_time: int  # ms
    end_time: int  # ms
    status: str  # FINISHED, FAILED, KILLED
    params: tuple[tuple[str, str], ...]
    metrics: tuple[Point, ...]
    tags: tuple[tuple[str, str], ...]


class Unmappable(ValueError):
    """A record that cannot be an MLflow run (it has not ended; a time that is no time)."""


def _ms(text: str, what: str) -> int:
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise Unmappable(f"its {what} {text!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0, round(when.timestamp() * 1000))


def _cut(value: str, limit: int) -> str:
    if len(value) <= limit:
        return value
    marker = f"... [cut by mlproject: {len(value)} characters]"
    return value[:max(0, limit - len(marker))] + marker


def _params(record: RunRecord) -> tuple[dict[str, str], dict[str, str]]:
    """The parameters to export, and the logged ones moved aside (`NAME (logged)` -> name)."""
    merged = dict(record.parameters)
    moved: dict[str, str] = {}
    for name, value in record.logged_params.items():
        if merged.get(name, value) == value:
            merged[name] = value
            continue
        aside = f"logged.{name}"
        while aside in merged or aside in record.logged_params:
            aside = f"logged.{aside}"
        merged[aside] = value
        moved[f"{name} (logged)"] = aside
    return merged, moved


def _points(record: RunRecord, end: int) -> tuple[dict[str, str], list[Point]]:
    given = list(record.series) + [m for m in record.metrics if m not in record.series]
    exported = names.assign(given)
    points: dict[tuple[str, int, int, float], Point] = {}  # the same point twice is once
    for name, series in record.series.items():
        for index, (step, value, seconds) in enumerate(series):
            point = Point(exported[name], float(value), max(0, round(seconds * 1000)),
                          index if step is None else int(step))
            points.setdefault((point.key, point.timestamp, point.step, point.value), point)
    for name, value in record.metrics.items():
        if name not in record.series:
            points[(exported[name], end, 0, float(value))] = Point(exported[name], float(value),
                                                                    end, 0)
    return exported, list(points.values())


def _tags(record: RunRecord) -> dict[str, str]:
    code, env = record.code, record.environment
    tags = {RUN_ID_TAG: record.id, "mlproject.fingerprint": record.fingerprint,
            "mlproject.entry_point": record.entry_point, "mlproject.backend": record.backend,
            "mlproject.status": record.status.value, "mlproject.invocation": record.invocation,
            "mlproject.environment": f"{env.name}/{env.kind.value}",
            "mlflow.runName": record.id, "mlflow.source.type": "PROJECT",
            "mlflow.source.name": record.project, "mlflow.project.entryPoint": record.entry_point,
            "mlflow.project.backend": record.backend}
    optional = {"mlproject.environment.key": env.planned.get("key"),
                "mlproject.exit_code": record.exit_code, "mlproject.reason": record.reason,
                "mlflow.source.git.commit": code.get("commit"),
                "mlflow.source.git.branch": code.get("branch"),
                "mlproject.code.dirty": code.get("dirty"),
                "mlproject.sweep": (record.sweep or {}).get("id"), "mlproject.run_name": record.run_name}
    for key, value in optional.items():
        if value is not None:
            tags[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return tags


def _pin(pin: Mapping[str, object]) -> str:
    for key in ("md5", "sha", "rev", "pending"):
        if pin.get(key) is not None:
            return str(pin[key])
    return "unpinned"


def mapped(record: RunRecord, limits: Limits = Limits()) -> MlflowRun:
    """The MLflow run `record` is exported as; Unmappable says why there is none."""
    if not record.status.final:
        raise Unmappable(f"it is still {record.status.value}")
    start = _ms(record.started_at, "started_at")
    last_point = max((round(p[2] * 1000) for s in record.series.values() for p in s), default=0)
    end = (_ms(record.ended_at, "ended_at") if record.ended_at is not None
           else max(start, last_point))  # crashed: it ended, no one saw when
    params, moved = _params(record)
    param_names = names.assign(params)
    metric_names, points = _points(record, end)
    tags = _tags(record)
    data_keys = names.assign([f"mlproject.data.{n}" for n in record.data], taken=tags)
    for name, pin in record.data.items():
        tags[data_keys[f"mlproject.data.{name}"]] = _pin(pin)
    renamed = {kind: {k: v for k, v in mapping.items() if k != v} for kind, mapping in (
        ("param", param_names), ("metric", metric_names), ("tag", data_keys))}
    renamed["param"] = {**{k: param_names[v] for k, v in moved.items()},
                        **{k: v for k, v in renamed["param"].items() if k not in moved.values()}}
    if any(renamed.values()):
        tags["mlproject.renamed"] = json.dumps({k: v for k, v in renamed.items() if v},
                                               ensure_ascii=False, sort_keys=True)
    cut = [param_names[k] for k, v in params.items() if len(v) > limits.param_value]
    cut += [k for k, v in tags.items() if len(v) > limits.tag_value]
    if cut:
        tags["mlproject.truncated"] = ",".join(cut)
    return MlflowRun(
        run_name=record.id, start_time=start, end_time=max(start, end),
        status=STATUSES[record.status],
        params=tuple((param_names[k], _cut(v, limits.param_value)) for k, v in params.items()),
        metrics=tuple(points),
        tags=tuple((k, _cut(v, limits.tag_value)) for k, v in tags.items()))
