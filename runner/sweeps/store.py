"""A sweep's file, `.mlproject/sweeps/ID.json`: what the sweep was (its name, entry point,
metric and goal, the backend and concurrency) and its points (each one's parameters, and the
earlier run it reused where its fingerprint had succeeded before). Written atomically when the
sweep starts and when it ends; the runs themselves are records like any other, each naming the
sweep's id and the point's index, so a sweep killed before its end is still shown whole."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from mlproject.runner.state import records
from mlproject.runner.util.files import write_atomic

FORMAT = "mlproject.sweep/1"
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_BYTES = 64 << 20


class SweepError(ValueError):
    """No sweep of that id, or its file cannot be used; the message says why."""


def sweeps_dir(root: str) -> Path:
    return records.state_dir(root) / "sweeps"


def new_id(label: str) -> str:
    """An id that sorts by start time and names what was swept."""
    stamp = records.now().strftime("%Y%m%d-%H%M%S")
    return f"{label}-{stamp}-{os.urandom(2).hex()}"


def write(root: str, data: dict[str, Any]) -> None:
    records.ensure_state_dir(root)
    sweeps_dir(root).mkdir(exist_ok=True)
    write_atomic(sweeps_dir(root) / f"{data['id']}.json",
                 json.dumps({"format": FORMAT, **data}, indent=1) + "\n")


def _problem(data: Any, sweep_id: str) -> str | None:
    if not isinstance(data, dict):
        return "holds no sweep (a JSON object)"
    if data.get("format") != FORMAT:
        return f"has format {data.get('format')!r}, not {FORMAT}"
    if data.get("id") != sweep_id:
        return "names another sweep"
    points = data.get("points")
    if not isinstance(points, list) or not all(
            isinstance(p, dict) and type(p.get("index")) is int
            and isinstance(p.get("parameters"), dict)
            and isinstance(p.get("reused"), (str, type(None))) for p in points):
        return "has points of the wrong shape"
    for key in ("entry_point", "status"):
        if not isinstance(data.get(key), str):
            return f"has no {key}"
    if not isinstance(data.get("metric"), (str, type(None))) or data.get("goal") not in (
            "minimize", "maximize"):
        return "has a metric or goal of the wrong shape"
    return None


def read(root: str, sweep_id: str) -> dict[str, Any]:
    """The sweep `sweep_id` names (an id, a unique prefix of one, or a sweep's name: its latest
    run); SweepError says why not."""
    if not ID.fullmatch(sweep_id):
        raise SweepError(f"{sweep_id!r} is no sweep id (letters, digits, '.', '_' and '-')")
    base = sweeps_dir(root)
    target = base / f"{sweep_id}.json"
    if not target.exists():
        try:
            names = sorted(n[:-5] for n in os.listdir(base) if n.endswith(".json"))
        except OSError:
            names = []
        matches = [n for n in names if n.startswith(sweep_id)]
        if len(matches) > 1 and all(n.startswith(f"{sweep_id}-") for n in matches):
            matches = matches[-1:]  # a sweep's name: its latest run (ids sort by time)
        if len(matches) != 1:
            if not matches:
                known = f" (sweeps: {', '.join(names[-5:])})" if names else " (none recorded)"
                raise SweepError(f"no sweep {sweep_id!r} in {root}{known}")
            raise SweepError(f"sweep id prefix {sweep_id!r} is ambiguous: {', '.join(matches)}")
        sweep_id, target = matches[0], base / f"{matches[0]}.json"
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise SweepError(f"{target} is larger than {MAX_BYTES >> 20} MiB")
        data = json.loads(raw)
    except OSError as exc:
        raise SweepError(f"{target} cannot be read: {exc.strerror}") from None
    except (ValueError, RecursionError) as exc:
        raise SweepError(f"{target} is not valid JSON: {str(exc)[:200]}") from None
    why = _problem(data, sweep_id)
    if why:
        raise SweepError(f"{target} {why}")
    result: dict[str, Any] = data
    return result
