"""What a step's code logged (`mlproject.log`: `RUN_DIR/tracking/*.jsonl`, one file per process,
and the copies in `RUN_DIR/artifacts/`), read into a `Tracked` value for the run's record.

The files are the step's, so anything may be in them (a line cut by a kill, another tool's
JSON, a flood): reading never raises and never hangs, what is wrong is said in `problem`, and
what is read is bounded: MAX_BYTES in all (64 MiB is over a million points), MAX_POINTS kept per
series (every record carries its series, and a report draws them: beyond that, points are
thinned evenly, the first and the last always kept), MAX_ARTIFACTS listed.
"""
from __future__ import annotations

import json
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_BYTES = 64 << 20
MAX_POINTS = 10_000
MAX_ARTIFACTS = 1_000
MAX_PARAMS = 1_000


@dataclass(frozen=True)
class Tracked:
    params: dict[str, str] = field(default_factory=dict)
    series: dict[str, list[list[Any]]] = field(default_factory=dict)  # [step, value, time]
    artifacts: tuple[dict[str, Any], ...] = ()
    problem: str | None = None
    # what MLflow's store held besides (mlflowstore.summary's runs, tags and problem), or None
    mlflow: dict[str, Any] | None = None

    @property
    def last(self) -> dict[str, float]:
        """Each series' last value: the run's metric of that name."""
        return {name: points[-1][1] for name, points in self.series.items() if points}


def _lines(directory: Path, notes: list[str]) -> list[dict[str, Any]]:
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    except OSError as exc:
        notes.append(f"tracking files cannot be listed: {exc.strerror}")
        return []
    entries: list[dict[str, Any]] = []
    budget = MAX_BYTES
    bad = 0
    for name in names:
        if not name.endswith(".jsonl"):
            continue
        try:
            fd = os.open(directory / name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW
                         | os.O_CLOEXEC)
        except OSError as exc:
            notes.append(f"tracking file {name} cannot be read: {exc.strerror}")
            continue
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                notes.append(f"tracking file {name} is not a regular file")
                continue
            data = handle.read(budget + 1)
        if len(data) > budget:
            notes.append(f"the tracking files hold more than {MAX_BYTES >> 20} MiB: the rest "
                         "is left out")
            data = data[:budget]
        budget -= len(data)
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except (ValueError, RecursionError):
                bad += 1  # a line cut short by a kill, or not one of log's
                continue
            if isinstance(entry, dict):
                entries.append(entry)
            else:
                bad += 1
        if budget <= 0:
            break
    if bad:
        notes.append(f"{bad} tracking line{'s' if bad > 1 else ''} could not be read (cut "
                     "short, or not written by mlproject.log)")
    return entries


def _finite(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _thinned(points: list[list[Any]]) -> list[list[Any]]:
    return _thinned_to(points, MAX_POINTS)


def _artifacts(run_dir: Path, under: str = "artifacts") -> list[dict[str, Any]]:
    """What is under `under` in the run directory, each top entry with its size (links are
    not followed)."""
    base = run_dir / under
    try:
        entries = sorted(os.scandir(base), key=lambda e: e.name)
    except OSError:
        return []
    found = []
    for entry in entries[:MAX_ARTIFACTS]:
        size = 0
        if entry.is_dir(follow_symlinks=False):
            for top, _dirs, files in os.walk(entry.path):
                for name in files:
                    try:
                        size += os.lstat(os.path.join(top, name)).st_size
                    except OSError:
                        pass
        else:
            try:
                size = entry.stat(follow_symlinks=False).st_size
            except OSError:
                pass
        found.append({"path": f"{under}/{entry.name}", "size": size})
    return found


def read(run_dir: Path) -> Tracked:
    """What the step's code logged into `run_dir`; never raises."""
    notes: list[str] = []
    try:
        entries = _lines(run_dir / "tracking", notes)
    except (OSError, MemoryError) as exc:
        return Tracked(problem=f"the tracking files cannot be read: {exc}")
    series: dict[str, list[list[Any]]] = {}
    params: dict[str, str] = {}
    skipped = 0
    for entry in entries:
        kind, name = entry.get("kind"), entry.get("name")
        if not isinstance(name, str) or not name:
            skipped += 1
        elif kind == "metric":
            step, value, when = entry.get("step"), entry.get("value"), entry.get("time")
            if not _finite(value) or not _finite(when) or not (
                    step is None or (type(step) is int and step >= 0)):
                skipped += 1
                continue
            series.setdefault(name, []).append([step, value, when])
        elif kind == "param":
            value = entry.get("value")
            if isinstance(value, str) and (name in params or len(params) < MAX_PARAMS):
                params[name] = value
            else:
                skipped += 1
    if skipped:
        notes.append(f"{skipped} tracking entr{'ies' if skipped > 1 else 'y'} left out (not a "
                     "finite number, a step, or a name)")
    for points in series.values():  # the processes' files merged: in the order logged
        points.sort(key=lambda p: p[2])
    mlflow = _with_mlflow(run_dir, series, params, notes)
    series = {name: _thinned(points) for name, points in series.items()}
    artifacts = _artifacts(run_dir)
    for run in (mlflow or {}).get("runs", ()):  # what MLflow put in the run's own store
        uri = run["artifact_uri"] or "/"
        # the store is the step's: a location is listed only where it really is in the run
        # directory (no `..`, no link out of it)
        where = Path(os.path.realpath(uri.removeprefix("file://")))
        if where.is_relative_to(os.path.realpath(run_dir)) and len(artifacts) < MAX_ARTIFACTS:
            artifacts += _artifacts(run_dir, where.relative_to(os.path.realpath(run_dir)).as_posix())
    return Tracked(params, series, tuple(artifacts[:MAX_ARTIFACTS]),
                   "; ".join(notes) if notes else None, mlflow)


def _with_mlflow(run_dir: Path, series: dict[str, list[list[Any]]], params: dict[str, str],
                 notes: list[str]) -> dict[str, Any] | None:
    """What the code logged through MLflow, added to `series` and `params` (a name logged both
    ways keeps mlproject.log's, and that is said); the rest of it, for the record."""
    from mlproject.runner.tracking import mlflowstore

    found = mlflowstore.read(run_dir)
    if found is None:
        return None
    both = sorted({*(set(found.series) & set(series)), *(set(found.params) & set(params))})
    if both:
        notes.append(f"logged both through mlproject.log and MLflow: {', '.join(both[:5])}"
                     f"{' ...' if len(both) > 5 else ''} (mlproject.log's kept)")
    for name, points in found.series.items():
        series.setdefault(name, points)
    for name, value in found.params.items():
        if len(params) >= MAX_PARAMS:
            break
        params.setdefault(name, value)
    if found.problem:
        notes.append(found.problem)
    return mlflowstore.summary(found)


CARRIED_BYTES = 2 << 20  # in a worker's result, which the bundle takes up to 4 MiB


def to_json(tracked: Tracked) -> dict[str, Any]:
    """What was logged, as a worker's result carries it: series thinned further until the
    whole fits CARRIED_BYTES (a result over its bound would be lost with everything in it)."""
    import json

    series = tracked.series
    limit = MAX_POINTS
    while True:
        out = {"series": series, "params": tracked.params, "problem": tracked.problem,
               "mlflow": tracked.mlflow}
        if len(json.dumps(out)) <= CARRIED_BYTES or limit <= 2:
            return out
        limit //= 2
        series = {name: _thinned_to(points, limit) for name, points in tracked.series.items()}
        note = f"series thinned to {limit} points each to travel back from the engine"
        tracked = Tracked(tracked.params, tracked.series, tracked.artifacts,
                          f"{tracked.problem}; {note}" if tracked.problem and note not in
                          tracked.problem else tracked.problem or note)


def _thinned_to(points: list[list[Any]], limit: int) -> list[list[Any]]:
    if len(points) <= limit:
        return points
    stride = (len(points) - 1) / (limit - 1)
    return [points[round(i * stride)] for i in range(limit)]


def from_json(data: Any) -> Tracked:
    """What a worker's result says was logged, checked as the files are (a result comes from
    another machine): wrong entries are left out and said."""
    if not isinstance(data, dict):
        return Tracked(problem="the worker's tracking report is not one")
    series: dict[str, list[list[Any]]] = {}
    skipped = 0
    raw_series = data["series"] if isinstance(data.get("series"), dict) else {}
    for name, points in raw_series.items():
        if not isinstance(name, str) or not name or not isinstance(points, list):
            skipped += 1
            continue
        kept = [p for p in points if isinstance(p, list) and len(p) == 3
                and (p[0] is None or (type(p[0]) is int and p[0] >= 0))
                and _finite(p[1]) and _finite(p[2])]
        skipped += len(points) - len(kept)
        if kept:
            series[name] = _thinned(kept)
    raw_params = data["params"] if isinstance(data.get("params"), dict) else {}
    params = {k: v for k, v in raw_params.items() if isinstance(k, str) and isinstance(v, str)}
    skipped += len(raw_params) - len(params)
    notes = [data["problem"]] if isinstance(data.get("problem"), str) else []
    mlflow = data.get("mlflow")
    if mlflow is not None and not _mlflow_shaped(mlflow):
        mlflow = None
        skipped += 1
    if skipped:
        notes.append(f"{skipped} tracked entries from the engine left out (of the wrong shape)")
    return Tracked(params, series, (), "; ".join(notes) if notes else None, mlflow)


def _mlflow_shaped(data: Any) -> bool:
    """Whether a worker's `mlflow` report has the shape the record's schema wants."""
    from mlproject.runner.state import record, schemacheck

    whole = record.schema()["properties"]["mlflow"]
    wanted = {**whole, "type": "object", "required": ["runs", "tags", "problem"]}
    return isinstance(data, dict) and schemacheck.problem(data, wanted) is None
