"""Each sweep among the page's runs, its points ranked for the page's sweep tables.

On the page's run dicts (data.py). A record says which sweep a run is a point of; the sweep's
file (`.mlproject/sweeps/ID.json`, `declared`) says which metric it optimizes, and its goal.
Where the file is gone, or names no metric, the metric is inferred: the first metric its points
have, and its direction from the metric's name (a loss, an error, a time: lower is better;
anything else: higher). The page says when it was inferred. The best point is the best one that succeeded;
failed points and points without the metric follow, by their index.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

_LOWER_IS_BETTER = re.compile(r"loss|err|mse|mae|rmse|mape|nll|perplex|ppl|wer|cer|latency|time|"
                              r"duration|cost|regret|bpd|bits", re.IGNORECASE)
_FAILED = frozenset({"failed", "timeout", "oom", "cancelled", "interrupted", "crashed"})


def declared(root: str, ids: set[str]) -> dict[str, tuple[str, str]]:
    """sweep id -> (metric, "min" or "max") as each sweep's file declares them."""
    from mlproject.runner.sweeps import store

    found = {}
    for sweep_id in sorted(ids):
        try:
            data = store.read(root, sweep_id)
        except store.SweepError:
            continue
        if data.get("id") == sweep_id and data.get("metric"):
            found[sweep_id] = (str(data["metric"]),
                               "max" if data.get("goal") == "maximize" else "min")
    return found


def table(runs: Sequence[dict[str, Any]],
          known: Mapping[str, tuple[str, str]] | None = None) -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        if run["sweep"] is not None:
            groups.setdefault(run["sweep"]["id"], []).append(run)
    return [_ranked(sweep_id, points, (known or {}).get(sweep_id))
            for sweep_id, points in groups.items()]


def goal_of(metric: str) -> str:
    """"min" where lower is better, going by the metric's name; else "max"."""
    return "min" if _LOWER_IS_BETTER.search(metric) else "max"


def _ranked(sweep_id: str, points: list[dict[str, Any]],
            known: tuple[str, str] | None) -> dict[str, Any]:
    points = sorted(points, key=_by_index)
    if known is not None:
        metric: str | None = known[0]
        goal: str | None = known[1]
    else:
        metric = next((name for p in points for name in p["metrics"]), None)
        goal = None if metric is None else goal_of(metric)
    ranked: list[dict[str, Any]] = []
    if metric is not None:
        sign = 1.0 if goal == "min" else -1.0
        ranked = sorted((p for p in points if p["status"] == "succeeded" and metric in p["metrics"]),
                        key=lambda p: sign * p["metrics"][metric])  # stable: ties by index
    first = {p["id"] for p in ranked}
    statuses = Counter(p["status"] for p in points)
    failed = sum(statuses[s] for s in _FAILED)
    return {
        "id": sweep_id,
        "name": next((p["sweep"]["name"] for p in points if p["sweep"]["name"]), None),
        "metric": metric, "goal": goal, "declared": known is not None,
        "best": ranked[0]["id"] if ranked else None,
        "order": [p["id"] for p in ranked] + [p["id"] for p in points if p["id"] not in first],
        "counts": {"points": len(points), "succeeded": statuses["succeeded"], "failed": failed,
                   "other": len(points) - statuses["succeeded"] - failed},
        "parameters": _varying(points),
    }


def _by_index(point: dict[str, Any]) -> tuple[int, int, str]:
    index = point["sweep"]["index"]
    return (0, index, point["id"]) if isinstance(index, int) else (1, 0, point["id"])


def _varying(points: Sequence[dict[str, Any]]) -> list[str]:
    """The parameters whose values differ between the points (all of them where none do)."""
    names = list(dict.fromkeys(name for p in points for name in p["parameters"]))
    varying = [n for n in names if len({p["parameters"].get(n) for p in points}) > 1]
    return varying or names
