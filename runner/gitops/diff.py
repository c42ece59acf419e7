"""What changed from one lock to another, per entry point: metrics, parameters, data pins and
environment packages. Pure: two values in, a value out (DVC's `repo/metrics/diff.py` is the
model: every name on either side, the numbers and their difference)."""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from mlproject.runner.gitops.lockfile import Lock, LockEntry

Side = Literal["added", "removed", "changed", "unchanged", "absent"]  # absent: in neither lock
Move = Literal["added", "removed", "upgraded", "downgraded", "changed"]


@dataclass(frozen=True)
class MetricChange:
    name: str
    base: float | None
    head: float | None

    @property
    def delta(self) -> float | None:
        if self.base is None or self.head is None:
            return None
        return self.head - self.base

    @property
    def relative(self) -> float | None:
        """The delta as a fraction of the base value's magnitude; None from a base of 0."""
        delta = self.delta
        if delta is None or self.base == 0 or self.base is None:
            return None
        value = delta / abs(self.base)
        return value if math.isfinite(value) else None


@dataclass(frozen=True)
class ValueChange:
    name: str
    base: str | None  # None: not there on that side
    head: str | None


@dataclass(frozen=True)
class DataChange:
    name: str
    base: Mapping[str, Any] | None  # the pin: path, md5, size, nfiles, repo, rev, sha
    head: Mapping[str, Any] | None

    def field(self, key: str, side: Mapping[str, Any] | None) -> Any:
        return None if side is None else side.get(key)

    @property
    def path(self) -> str:
        return str(self.field("path", self.head) or self.field("path", self.base) or self.name)

    def delta(self, key: str) -> int | None:
        old, new = self.field(key, self.base), self.field(key, self.head)
        if isinstance(old, int) and isinstance(new, int):
            return new - old
        return None


@dataclass(frozen=True)
class PackageChange:
    name: str
    base: str | None
    head: str | None
    move: Move


@dataclass(frozen=True)
class EnvironmentChange:
    name: str | None
    base_key: str | None
    head_key: str | None
    packages: tuple[PackageChange, ...]


@dataclass(frozen=True)
class EntryDiff:
    entry_point: str
    side: Side
    base_fingerprint: str | None
    head_fingerprint: str | None
    metrics: tuple[MetricChange, ...]  # every metric on either side, changed or not
    parameters: tuple[ValueChange, ...]  # changed ones only
    data: tuple[DataChange, ...]
    environment: EnvironmentChange | None  # None: the same pins on both sides

    @property
    def reran(self) -> bool:
        """Whether the head entry comes from another run than the base's (a new fingerprint)."""
        return self.head_fingerprint is not None and self.head_fingerprint != self.base_fingerprint


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def metrics(base: Mapping[str, Any], head: Mapping[str, Any]) -> tuple[MetricChange, ...]:
    names = list(head) + [name for name in base if name not in head]
    return tuple(MetricChange(n, _number(base.get(n)), _number(head.get(n))) for n in names)


def values(base: Mapping[str, Any], head: Mapping[str, Any]) -> tuple[ValueChange, ...]:
    names = sorted(set(base) | set(head))
    return tuple(ValueChange(n, _text(base.get(n)), _text(head.get(n))) for n in names
                 if _text(base.get(n)) != _text(head.get(n)))


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def data(base: Mapping[str, Mapping[str, Any]],
         head: Mapping[str, Mapping[str, Any]]) -> tuple[DataChange, ...]:
    names = sorted(set(base) | set(head))
    return tuple(DataChange(n, base.get(n), head.get(n)) for n in names
                 if dict(base.get(n) or {}) != dict(head.get(n) or {}))


_RELEASE = re.compile(r"\d+(\.\d+)*")


def _release(text: str) -> tuple[int, ...]:
    parts = [int(p) for p in text.split(".")]
    while len(parts) > 1 and parts[-1] == 0:  # 1.0 == 1.0.0, as PEP 440 has it
        parts.pop()
    return tuple(parts)


def _move(old: str, new: str) -> Move:
    if _RELEASE.fullmatch(old) and _RELEASE.fullmatch(new):  # most pins: no import (14 ms)
        before_release, after_release = _release(old), _release(new)
        if before_release == after_release:
            return "changed"
        return "upgraded" if after_release > before_release else "downgraded"
    from packaging.version import InvalidVersion, Version

    try:
        before, after = Version(old), Version(new)
    except InvalidVersion:  # a conda build string or a local name: different, no order
        return "changed"
    if after > before:
        return "upgraded"
    return "downgraded" if after < before else "changed"


def packages(base: Mapping[str, Any], head: Mapping[str, Any]) -> tuple[PackageChange, ...]:
    changes = []
    for name in sorted(set(base) | set(head)):
        old, new = _text(base.get(name)), _text(head.get(name))
        if old == new:
            continue
        if old is None:
            changes.append(PackageChange(name, None, new, "added"))
        elif new is None:
            changes.append(PackageChange(name, old, None, "removed"))
        else:
            changes.append(PackageChange(name, old, new, _move(old, new)))
    return tuple(changes)


def environment(base: Mapping[str, Any], head: Mapping[str, Any]) -> EnvironmentChange | None:
    moved = packages(base.get("packages") or {}, head.get("packages") or {})
    same = (base.get("key"), base.get("digest")) == (head.get("key"), head.get("digest"))
    if same and not moved:
        return None
    return EnvironmentChange(_text(head.get("name") or base.get("name")), _text(base.get("key")),
                             _text(head.get("key")), moved)


def entry(name: str, base: LockEntry | None, head: LockEntry | None) -> EntryDiff:
    empty: Mapping[str, Any] = {}
    side: Side = ("absent" if base is None and head is None else "added" if base is None
                  else "removed" if head is None
                  else "unchanged" if base.fingerprint == head.fingerprint else "changed")
    return EntryDiff(
        entry_point=name, side=side,
        base_fingerprint=base.fingerprint if base else None,
        head_fingerprint=head.fingerprint if head else None,
        metrics=metrics(base.metrics if base else empty, head.metrics if head else empty),
        parameters=values(base.parameters if base else empty, head.parameters if head else empty),
        data=data(base.data if base else empty, head.data if head else empty),
        environment=(None if base is None or head is None
                     else environment(base.environment, head.environment)),
    )


def locks(base: Lock | None, head: Lock) -> tuple[EntryDiff, ...]:
    """Every entry point of the head lock, in its order, then those only the base has."""
    before = base.entries if base is not None else {}
    names = list(head.entries) + [n for n in before if n not in head.entries]
    return tuple(entry(n, before.get(n), head.entries.get(n)) for n in names)
