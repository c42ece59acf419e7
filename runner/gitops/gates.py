"""Gates: the conditions a pull request's metrics must meet, checked against the head's lock
and the base's.

`evaluate` is pure: the spec names the gates, the locks hold the metrics. One Verdict per rule
(`min`, `max`, `not_worse_than`), in the file's order. Arithmetic on the base value is done in
decimal on the numbers as written (`0.7 - 0.1` is `0.6`, not 0.59999...), so a value exactly at
its bound passes, as a reader of the file expects.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from mlproject.spec.model import Gate, Spec

if TYPE_CHECKING:
    from mlproject.runner.gitops.lockfile import Lock

RULES = ("min", "max", "not_worse_than")
# Where `mlproject gate` and `mlproject report` look for the base when no --base is given: the
# pull request's base branch on GitHub Actions, then the usual default branches.
BASE_CANDIDATES = ("origin/main", "main", "origin/master", "master")


@dataclass(frozen=True)
class Verdict:
    entry_point: str
    metric: str
    value: float | None  # the head's value; None when missing or not a number
    bound: float | None  # the limit the value is held to; None when there is none (no base)
    base_value: float | None  # the base's value, for not_worse_than
    passed: bool
    reason: str  # why, in a phrase that names the numbers
    rule: str  # min, max or not_worse_than

    def line(self) -> str:
        """One line for a terminal or a CI log."""
        return f"{'PASS' if self.passed else 'FAIL'} {self.entry_point} {self.metric}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return {"entry_point": self.entry_point, "metric": self.metric, "rule": self.rule,
                "value": self.value, "bound": self.bound, "base_value": self.base_value,
                "passed": self.passed, "reason": self.reason}


def evaluate(spec: Spec, head: Lock, base: Lock | None, *,
             require_base: bool = False) -> list[Verdict]:
    """Every gate of the spec applied to the head's metrics (and the base's, for
    `not_worse_than`). `base` None: there is no lock at the base (a first pull request)."""
    verdicts: list[Verdict] = []
    for entry in spec.entry_points.values():
        head_entry = head.entries.get(entry.name)
        base_entry = None if base is None else base.entries.get(entry.name)
        for gate in entry.gates:
            for rule in RULES:
                if getattr(gate, rule) is None:
                    continue
                if head_entry is None:
                    verdicts.append(Verdict(
                        entry.name, gate.metric, None, _fixed_bound(gate, rule), None, False,
                        f"{entry.name} has no entry in mlproject.lock: run it "
                        f"(`mlproject run . -e {entry.name}`) and commit the lock", rule))
                    continue
                value, why = _number(head_entry.metrics, gate.metric)
                if value is None:
                    verdicts.append(Verdict(
                        entry.name, gate.metric, None, _fixed_bound(gate, rule), None, False,
                        f"{why} in the lock entry of {entry.name}", rule))
                elif rule == "not_worse_than":
                    verdicts.append(_not_worse(entry.name, gate, value, base, base_entry,
                                               require_base))
                else:
                    verdicts.append(_limit(entry.name, gate, rule, value))
    return verdicts


def _fixed_bound(gate: Gate, rule: str) -> float | None:
    return gate.min if rule == "min" else gate.max if rule == "max" else None


def _number(metrics: Mapping[str, Any], name: str) -> tuple[float | None, str]:
    """The metric as a finite number, or None and what is wrong with it."""
    if name not in metrics:
        return None, f"missing: no metric {name!r}"
    value = metrics[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, f"not a number: {name} is {value!r}"
    if not math.isfinite(value):
        return None, f"not a finite number: {name} is {value!r}"
    return value, ""


def _text(number: float | Decimal) -> str:
    """A number as the file or the metrics file would write it."""
    if isinstance(number, Decimal):
        text = format(number.normalize(), "f")
        return text if len(text) <= 20 else repr(float(number))
    return repr(number) if isinstance(number, float) else str(number)


def _exact(number: float) -> Decimal:
    """The decimal number that a float's shortest text names (0.1 -> 0.1, not 0.1000000000000000055...)."""
    return Decimal(repr(number)) if isinstance(number, float) else Decimal(number)


def _limit(entry: str, gate: Gate, rule: str, value: float) -> Verdict:
    bound = gate.min if rule == "min" else gate.max
    assert bound is not None
    passed = value >= bound if rule == "min" else value <= bound
    sign = (">=" if passed else "<") if rule == "min" else ("<=" if passed else ">")
    return Verdict(entry, gate.metric, value, bound, None, passed,
                   f"{_text(value)} {sign} bound {_text(bound)} ({rule})", rule)


def _not_worse(entry: str, gate: Gate, value: float, base: Lock | None, base_entry: Any,
               require_base: bool) -> Verdict:
    rule = "not_worse_than"
    if base is None:
        missing = "no mlproject.lock at the base"
    elif base_entry is None:
        missing = f"the base lock has no entry {entry}"
    else:
        base_value, why = _number(base_entry.metrics, gate.metric)
        missing = "" if base_value is not None else f"at the base, {why}"
    if missing:
        if require_base:
            return Verdict(entry, gate.metric, value, None, None, False,
                           f"{_text(value)}, no baseline ({missing}) and --require-base", rule)
        return Verdict(entry, gate.metric, value, None, None, True,
                       f"{_text(value)}, no baseline ({missing}): not compared", rule)
    assert base_value is not None
    exact_base, slack = _exact(base_value), _exact(gate.tolerance)
    shown = _text(gate.tolerance)
    if gate.relative:  # a fraction of the base value's size, whichever its sign
        slack = slack * abs(exact_base)
        shown = f"{_text(_exact(gate.tolerance) * 100)}% ({_text(slack)})"
    exact_value = _exact(value)
    higher = gate.direction == "higher"
    bound = exact_base - slack if higher else exact_base + slack
    passed = exact_value >= bound if higher else exact_value <= bound
    sign = (">=" if passed else "<") if higher else ("<=" if passed else ">")
    how = f"base {_text(base_value)} {'-' if higher else '+'} tolerance {shown}"
    return Verdict(entry, gate.metric, value, float(bound), base_value, passed,
                   f"{_text(value)} {sign} bound {_text(bound)} = {how}", rule)


def failed(verdicts: list[Verdict]) -> list[Verdict]:
    return [v for v in verdicts if not v.passed]


def default_base(root: str, environ: Mapping[str, str]) -> tuple[str | None, list[str]]:
    """The base to compare with when none is given: `origin/$GITHUB_BASE_REF` on a pull request
    in GitHub Actions, else the first of BASE_CANDIDATES that names a commit. Also the names
    tried, for the message when none does."""
    import subprocess

    tried = list(BASE_CANDIDATES)
    branch = environ.get("GITHUB_BASE_REF", "").strip()
    if branch:
        tried.insert(0, f"origin/{branch}")
    for ref in tried:
        found = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
                               cwd=root, capture_output=True, stdin=subprocess.DEVNULL)
        if found.returncode == 0:
            return ref, tried
    return None, tried
