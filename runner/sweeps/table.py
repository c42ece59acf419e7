"""A sweep's results: its points joined with their runs (the index's rows), sorted by the
sweep's metric (best first, by its goal; points without it last, in their order), as a table
or as JSON. A point run twice within the sweep (it cannot be, but a hand-made record may say
so) shows its latest run."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from mlproject.runner.state.index import Row


def status(sweep: dict[str, Any]) -> str:
    """The sweep's status; `crashed` for one left running by an mlproject that is gone (killed
    before it could write the sweep's end)."""
    from mlproject.runner.state import records
    from mlproject.runner.state.status import Status

    host = sweep.get("host")
    if sweep.get("status") != "running" or not isinstance(host, list) or len(host) != 3:
        return str(sweep.get("status"))
    now = records.status_now(Status.RUNNING, "local", None, *host)
    return "running" if now == Status.RUNNING else "crashed (its mlproject ended before it did)"


def points(sweep: dict[str, Any], rows: Sequence[Row]) -> list[dict[str, Any]]:
    """Each point with how it stands: its run, status, metrics; sorted best first."""
    by_id = {row["id"]: row for row in rows}
    ran: dict[int, Row] = {}
    for each in rows:
        tag = each.get("sweep")
        if isinstance(tag, dict) and tag.get("id") == sweep["id"] and type(tag.get("index")) is int:
            ran[tag["index"]] = each  # rows are oldest first: the latest wins
    out = []
    for point in sweep["points"]:
        row: Row | None = ran.get(point["index"]) or by_id.get(point.get("reused") or "")
        out.append({
            "index": point["index"], "parameters": point["parameters"],
            "run": row["id"] if row else None, "reused": point.get("reused"),
            "status": (row["status"] if row else "not run"),
            "metrics": dict(row["metrics"]) if row else {},
            "duration": row.get("duration") if row else None,
            "log": None if row is None else f".mlproject/runs/{row['id']}/log.txt",
        })
    metric, goal = sweep.get("metric"), sweep.get("goal", "minimize")
    if metric:
        def key(point: dict[str, Any]) -> tuple[int, float]:
            value = point["metrics"].get(metric)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                return (1, 0.0)
            return (0, value if goal == "minimize" else -value)

        out.sort(key=key)  # stable: points without the metric keep their order
    return out


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "-" if value is None else str(value)


def text(sweep: dict[str, Any], shown: list[dict[str, Any]]) -> str:
    metric = sweep.get("metric")
    swept = [n for n in (shown[0]["parameters"] if shown else {})
             if len({p["parameters"].get(n) for p in shown}) > 1] or list(
                 shown[0]["parameters"] if shown else {})
    others = [] if metric else sorted({m for p in shown for m in p["metrics"]})[:3]
    head = ["#", "STATUS", *([metric.upper()] if metric else [m.upper() for m in others]),
            *swept, "RUN"]
    table = [head]
    for p in shown:
        values = [p["metrics"].get(metric)] if metric else [p["metrics"].get(m) for m in others]
        run = p["run"] or "-"
        if p["reused"] and p["run"] == p["reused"]:
            run += " (earlier)"
        table.append([str(p["index"]), p["status"], *map(_cell, values),
                      *(p["parameters"].get(n, "-") for n in swept), run])
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in table]
    counts: dict[str, int] = {}
    for p in shown:
        counts[p["status"]] = counts.get(p["status"], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    goal = f", {sweep.get('goal')} {metric}" if metric else ""
    title = (f"sweep {sweep['id']} ({sweep.get('name') or 'from the command line'}: "
             f"{sweep['entry_point']}, {len(shown)} points{goal}): {summary}; "
             f"{status(sweep)}")
    return title + "\n" + "\n".join(lines) + "\n"


def as_json(sweep: dict[str, Any], shown: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("id", "name", "entry_point", "metric", "goal", "status", "backend", "jobs",
            "started_at", "ended_at")
    return {**{k: sweep.get(k) for k in keys}, "status": status(sweep), "points": shown}
