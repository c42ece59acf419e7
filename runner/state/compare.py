"""`mlproject runs compare A B ...`: runs side by side, a row per fact, marked where they differ.

Rows, in this order: the run (entry point, status, duration, backend), its parameters, its
metrics, what its code logged as parameters, its data pins (each input's md5, and the revision
it was pinned at), its environment (name and kind, its key: the content hash of what it holds,
the interpreter), its code (commit, uncommitted changes, the content digest) and the
fingerprint. A run that lacks a fact shows "-"."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mlproject.runner.state.record import RunRecord

ABSENT = "-"


@dataclass(frozen=True)
class Line:
    section: str  # run, parameter, metric, logged, data, environment, code
    name: str
    values: tuple[str, ...]

    @property
    def differs(self) -> bool:
        return len(set(self.values)) > 1

    def to_json(self) -> dict[str, Any]:
        return {"section": self.section, "name": self.name, "values": list(self.values),
                "differs": self.differs}


def _text(value: Any) -> str:
    if value is None:
        return ABSENT
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _union(maps: Sequence[Any]) -> list[str]:
    seen: dict[str, None] = {}
    for mapping in maps:
        seen.update(dict.fromkeys(mapping))
    return list(seen)


def lines(runs: Sequence[RunRecord]) -> list[Line]:
    out: list[Line] = []

    def add(section: str, name: str, values: Sequence[Any]) -> None:
        out.append(Line(section, name, tuple(_text(v) for v in values)))

    add("run", "entry point", [r.entry_point for r in runs])
    add("run", "status", [r.status.value for r in runs])
    add("run", "duration", [None if r.duration is None else f"{r.duration:.2f}s" for r in runs])
    add("run", "backend", [r.backend for r in runs])
    add("run", "sweep", [None if r.sweep is None else f"{r.sweep.get('id')} #{r.sweep.get('index')}"
                         for r in runs])
    for name in _union([r.parameters for r in runs]):
        add("parameter", name, [r.parameters.get(name) for r in runs])
    for name in _union([r.metrics for r in runs]):
        add("metric", name, [r.metrics.get(name) for r in runs])
    for name in _union([r.logged_params for r in runs]):
        add("logged", name, [r.logged_params.get(name) for r in runs])
    for name in _union([r.data for r in runs]):
        pins = [r.data.get(name) or {} for r in runs]
        add("data", f"{name} md5", [p.get("md5") for p in pins])
        if any(p.get("rev") for p in pins):
            add("data", f"{name} rev", [p.get("rev") for p in pins])
    add("environment", "name", [f"{r.environment.name} ({r.environment.kind.value})"
                                for r in runs])
    add("environment", "key", [r.environment.planned.get("key") for r in runs])
    add("environment", "interpreter", [r.environment.planned.get("detail") for r in runs])
    add("code", "commit", [r.code.get("commit") for r in runs])
    add("code", "uncommitted changes", [r.code.get("dirty") for r in runs])
    add("code", "digest", [r.code.get("digest") for r in runs])
    add("run", "fingerprint", [r.fingerprint for r in runs])
    return out
