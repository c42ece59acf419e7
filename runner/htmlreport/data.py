"""The page's data: what the run records hold that the page shows, as plain JSON, bounded.

Pure: the loaded records (and the time of writing) in, a dict out. A record was checked against
its schema when it was read, but its values are the step's own: any number of runs, of
parameters and metrics, names and values of any length, series of thousands of points. A page
must stay small enough for a browser to open at once, so whatever passes a bound is left out
(the newest runs and the most common columns are kept, series are thinned evenly keeping their
first and last points) and `notes` says what, for the page to show.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mlproject.runner.htmlreport import sweeps

if TYPE_CHECKING:
    from mlproject.runner.state.record import RunRecord
    from mlproject.runner.state.records import Loaded

PAGE_FORMAT = "mlproject.htmlreport/1"
MAX_RUNS = 20_000  # the newest
MAX_COLUMNS = 60  # of each kind (parameters, logged parameters, metrics): the most common
MAX_NAME = 200  # characters of a column's name; a longer one is left out
MAX_TEXT = 300  # characters of a value; a longer one is cut
MAX_POINTS = 500  # per series drawn
MAX_CURVES = 200  # runs drawn in one metric's chart: the newest that logged it
MAX_ALL_POINTS = 300_000  # in all charts together: series are thinned further to fit
MIN_POINTS = 20
MAX_UNREADABLE = 1_000

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_SURROGATE = re.compile("[\ud800-\udfff]")


def build(loaded: Sequence[Loaded], *, root: str, generated_at: str) -> dict[str, Any]:
    notes: list[str] = []
    readable = [one.record for one in loaded if one.record is not None]
    if len(readable) > MAX_RUNS:
        notes.append(f"{len(readable) - MAX_RUNS} older runs are left out: the page shows the "
                     f"newest {MAX_RUNS}")
        readable = readable[-MAX_RUNS:]
    params = _columns([r.parameters for r in readable], "parameters", notes)
    logged = _columns([r.logged_params for r in readable], "logged parameters", notes)
    metrics = _columns([r.metrics for r in readable], "metrics", notes)
    runs = [_run(r, params, logged, metrics) for r in readable]
    curves = _curves(readable, runs, metrics, notes)
    if any(_cut(v) != v for r in readable for v in (*r.parameters.values(), *r.logged_params.values())):
        notes.append(f"values longer than {MAX_TEXT} characters are cut short")
    unreadable = [one for one in loaded if one.record is None]
    if len(unreadable) > MAX_UNREADABLE:
        notes.append(f"{len(unreadable) - MAX_UNREADABLE} more run directories without a usable "
                     "record are left out of their list")
    statuses = Counter(one.status for one in loaded)
    page: dict[str, Any] = _clean({
        "format": PAGE_FORMAT, "generated_at": generated_at,
        "project": {"root": root, "name": next((r.name for r in readable if r.name), None)},
        "counts": {"directories": len(loaded), "shown": len(runs),
                   "statuses": dict(sorted(statuses.items()))},
        "notes": notes,
        "columns": {"parameters": params, "parameter_kinds": _kinds(readable, params),
                    "logged_params": logged, "metrics": metrics,
                    "metric_goals": {m: sweeps.goal_of(m) for m in metrics}, "series": curves},
        "runs": runs,
        "sweeps": sweeps.table(runs, sweeps.declared(root, {r["sweep"]["id"] for r in runs
                                                            if r["sweep"] is not None})),
        "unreadable": [{"id": one.id, "status": one.status, "problem": one.problem
                        or "run.json was never written (mlproject stopped before its first write)"}
                       for one in unreadable[-MAX_UNREADABLE:]],
    })
    return page


def _columns(maps: Sequence[Mapping[str, Any]], what: str, notes: list[str]) -> list[str]:
    """The names used, in order of first use; the MAX_COLUMNS most common where there are more."""
    counts: Counter[str] = Counter()
    for values in maps:
        counts.update(values.keys())
    too_long = [name for name in counts if len(name) > MAX_NAME or not name]
    for name in too_long:
        del counts[name]
    if too_long:
        notes.append(f"{_many(len(too_long), what)} with a name longer than {MAX_NAME} "
                     "characters (or empty) left out")
    names = list(counts)
    if len(names) > MAX_COLUMNS:
        kept = {name for name, _ in counts.most_common(MAX_COLUMNS)}
        notes.append(f"{_many(len(names) - MAX_COLUMNS, what)} used by fewer runs left out (the "
                     f"page shows the {MAX_COLUMNS} most common)")
        names = [name for name in names if name in kept]
    return names


def _kinds(records: Sequence[RunRecord], params: Sequence[str]) -> dict[str, str]:
    """"number" for a parameter whose every value reads as a finite number, else "text"."""
    kinds = {}
    for name in params:
        values = [r.parameters[name] for r in records if name in r.parameters]
        numeric = all(_NUMBER.fullmatch(v.strip()) and _number(float(v)) is not None
                      for v in values)
        kinds[name] = "number" if numeric else "text"
    return kinds


def _run(record: RunRecord, params: Sequence[str], logged: Sequence[str],
         metrics: Sequence[str]) -> dict[str, Any]:
    code = record.code
    commit = code.get("commit")
    dirty = code.get("dirty")
    sweep = record.sweep
    measured = {name: _number(record.metrics[name]) for name in metrics if name in record.metrics}
    return {
        "id": record.id, "entry_point": _cut(record.entry_point), "status": record.status.value,
        "reason": None if record.reason is None else _cut(record.reason),
        "started_at": record.started_at, "duration": _number(record.duration),
        "backend": _cut(record.backend), "fingerprint": record.fingerprint,
        "commit": commit if isinstance(commit, str) else None,
        "dirty": dirty if isinstance(dirty, bool) else None,
        "parameters": {n: _cut(record.parameters[n]) for n in params if n in record.parameters},
        "logged_params": {n: _cut(record.logged_params[n]) for n in logged
                          if n in record.logged_params},
        "metrics": {n: v for n, v in measured.items() if v is not None},
        "series": {},  # filled by _curves for the runs that are drawn
        "sweep": None if sweep is None else _sweep(sweep),
    }


def _sweep(sweep: Mapping[str, Any]) -> dict[str, Any]:
    name = sweep.get("name")
    index = sweep.get("index")
    return {"id": _cut(str(sweep.get("id"))), "name": _cut(name) if isinstance(name, str) else None,
            "index": index if type(index) is int else None}


def _curves(records: Sequence[RunRecord], runs: Sequence[dict[str, Any]],
            metrics: Sequence[str], notes: list[str]) -> list[str]:
    """Put each drawn series into its run (`runs` parallels `records`); the metrics drawn, in
    the table's order of metrics (series no run's metrics name after them)."""
    drawn: dict[str, list[int]] = {}  # metric -> indices of the runs drawn, newest first
    for i in range(len(records) - 1, -1, -1):
        for name, points in records[i].series.items():
            if points and 0 < len(name) <= MAX_NAME:
                drawn.setdefault(name, []).append(i)
    names = sorted(drawn, key=lambda n: -len(drawn[n]))[:MAX_COLUMNS]
    if len(drawn) > len(names):
        notes.append(f"{len(drawn) - len(names)} series logged by fewer runs not drawn")
    for name in names:
        if len(drawn[name]) > MAX_CURVES:
            notes.append(f"{name}: the curves of the newest {MAX_CURVES} of the "
                         f"{len(drawn[name])} runs that logged it are drawn")
            del drawn[name][MAX_CURVES:]
    curves = sum(len(drawn[n]) for n in names)
    limit = max(MIN_POINTS, min(MAX_POINTS, MAX_ALL_POINTS // max(curves, 1)))
    thinned = False
    for name in names:
        for i in drawn[name]:
            points = records[i].series[name]
            thinned |= len(points) > limit
            runs[i]["series"][name] = [p for p in map(_point, _thin(points, limit)) if p]
    if thinned:
        notes.append(f"series of more than {limit} points are thinned to {limit} (evenly, the "
                     "first and the last kept)")
    order = {name: i for i, name in enumerate(metrics)}
    return sorted(names, key=lambda n: (order.get(n, len(order)), n))


def _thin(points: Sequence[Any], limit: int) -> list[Any]:
    if len(points) <= limit:
        return list(points)
    last = len(points) - 1
    return [points[round(k * last / (limit - 1))] for k in range(limit)]


def _point(point: Sequence[Any]) -> list[Any] | None:
    step = point[0] if type(point[0]) is int else None
    value = _number(point[1])
    return None if value is None else [step, value]


def _number(value: object) -> float | None:
    """A finite float, or None (a bool is no number; an int past a float's range is none)."""
    if type(value) not in (int, float):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"


def _many(count: int, plural: str) -> str:
    return f"{count} {plural if count != 1 else plural[:-1]}"


def _clean(value: Any) -> Any:
    """`value` with each lone surrogate (JSON lets a string hold one: "\\ud800") made U+FFFD:
    the page's JSON could carry it escaped, but a browser may fail on it (Chromium crashes)."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value) if _SURROGATE.search(value) else value
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value
