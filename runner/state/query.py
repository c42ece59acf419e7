"""`runs --filter`, `--sort` and `--limit` over the index's rows.

A filter is conditions joined by commas, all of which a run must meet: `NAME OP VALUE`, OP one
of `=`, `!=`, `>`, `>=`, `<`, `<=` and `~` (contains). NAME is a field of the row (id,
entry_point, status, backend, sweep (its id), fingerprint, started_at, ended_at, duration,
exit_code, reason), `params.NAME` or `metrics.NAME`, or a bare name, which is the parameter of
that name where a run has one, else its metric. Where both sides read as numbers they compare as
numbers (`alpha>0.1` holds for 0.5 and 5e-1, not for 0.1 or 1e-1), else as text.
A run that lacks the NAME meets no condition on it, `!=` included (as SQL's NULL). A sort key
is a NAME, descending with a leading `-`; runs lacking it come last either way."""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mlproject.runner.state.index import Row

FIELDS = ("id", "entry_point", "status", "backend", "sweep", "fingerprint", "started_at",
          "ended_at", "duration", "exit_code", "reason")
_CONDITION = re.compile(r"\s*([A-Za-z0-9_.\-/]+)\s*(!=|>=|<=|=|>|<|~)\s*(.*?)\s*")
_MISSING = object()


class QueryError(ValueError):
    """A filter or sort key that cannot be read (a usage error: exit 2)."""


@dataclass(frozen=True)
class Condition:
    name: str
    op: str
    value: str

    def met(self, row: Row) -> bool:
        found = value_of(row, self.name)
        if found is _MISSING or found is None:
            return False
        if self.op == "~":
            return self.value in _text(found)
        mine, theirs = _number(found), _number(self.value)
        if mine is not None and theirs is not None:
            left: Any = mine
            right: Any = theirs
        else:
            left, right = _text(found), self.value
        if self.op == "=":
            return bool(left == right)
        if self.op == "!=":
            return bool(left != right)
        if type(left) is not type(right):
            return False
        return bool({">": left > right, ">=": left >= right, "<": left < right,
                     "<=": left <= right}[self.op])


def parse_filter(text: str) -> list[Condition]:
    conditions = []
    for part in text.split(","):
        if not part.strip():
            continue
        match = _CONDITION.fullmatch(part)
        if match is None:
            raise QueryError(f"--filter {part.strip()!r}: expected NAME OP VALUE, OP one of "
                             "= != > >= < <= ~")
        conditions.append(Condition(*match.groups()))
    if not conditions:
        raise QueryError("--filter is empty: give conditions such as status=succeeded")
    return conditions


def value_of(row: Row, name: str) -> Any:
    """The row's value for a filter's or sort's NAME; _MISSING where it has none."""
    if name.startswith("params."):
        return row.get("parameters", {}).get(name[7:], _MISSING)
    if name.startswith("metrics."):
        return row.get("metrics", {}).get(name[8:], _MISSING)
    if name in FIELDS:
        value = row.get(name)
        if name == "sweep":
            return value.get("id") if isinstance(value, dict) else _MISSING
        return _MISSING if value is None else value
    params = row.get("parameters", {})
    if name in params:
        return params[name]
    return row.get("metrics", {}).get(name, _MISSING)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def parse_sort(text: str) -> list[tuple[str, bool]]:
    keys = []
    for part in text.split(","):
        name = part.strip()
        descending = name.startswith("-")
        name = name.lstrip("-+").strip()
        if not name or not re.fullmatch(r"[A-Za-z0-9_.\-/]+", name):
            raise QueryError(f"--sort {part.strip()!r}: expected a NAME, or -NAME for descending")
        keys.append((name, descending))
    return keys


def sorted_rows(rows: Sequence[Row], keys: list[tuple[str, bool]]) -> list[Row]:
    """Stable sorts from the last key to the first; numbers before text, missing last."""
    out = list(rows)
    for name, descending in reversed(keys):
        present = [r for r in out if value_of(r, name) not in (_MISSING, None)]
        missing = [r for r in out if value_of(r, name) in (_MISSING, None)]

        def key(row: Row, name: str = name) -> tuple[int, float, str]:
            value = value_of(row, name)
            number = _number(value)
            return (0, number, "") if number is not None else (1, 0.0, _text(value))

        present.sort(key=key, reverse=descending)
        if descending:  # numbers still before text: reverse put text first
            present = ([r for r in present if key(r)[0] == 0]
                       + [r for r in present if key(r)[0] == 1])
        out = present + missing
    return out


def select(rows: Sequence[Row], filter_text: str | None, sort_text: str | None,
           limit: int | None) -> list[Row]:
    """The rows `runs` shows: filtered, sorted, limited (the N latest when not sorted)."""
    chosen = list(rows)
    if filter_text is not None:
        conditions = parse_filter(filter_text)
        chosen = [r for r in chosen if all(c.met(r) for c in conditions)]
    if sort_text is not None:
        chosen = sorted_rows(chosen, parse_sort(sort_text))
        return chosen[:limit] if limit is not None else chosen
    return chosen[-limit:] if limit is not None else chosen
