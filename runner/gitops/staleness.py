"""Whether each step is what mlproject.lock says it last was: up to date, stale (with what
changed, old -> new, as tox explains a rebuild), or never run. Observes only: the plan's
machinery (observe, resolve, what each step receives), nothing cloned, resolved or written.

A step's own outputs absent from the workspace (a fresh clone: they are not in Git) leave it
up to date when its fingerprint matches, and its dependants receive what the lock says it
wrote: the question is whether the lock matches the code, which CI asks in a fresh clone.
Outputs present and different from the lock make it stale.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlproject.runner.gitops import lockentry, lockfile
from mlproject.runner.gitops.lockfile import Lock, LockEntry
from mlproject.runner.plan import Step

UP_TO_DATE = "up to date"
STALE = "stale"
NEVER_RUN = "never run"
STATUS_FORMAT = "mlproject.status/1"


@dataclass(frozen=True)
class StepStatus:
    entry_point: str
    state: str  # UP_TO_DATE, STALE or NEVER_RUN
    reasons: tuple[str, ...]  # what changed since the locked run, each "what: old -> new"
    fingerprint: str  # now
    locked: str | None  # the lock's fingerprint; None: never run
    absent: tuple[str, ...] = ()  # its outputs that are not in the workspace
    notes: tuple[str, ...] = ()  # what differs without making it stale

    def to_json(self) -> dict[str, Any]:
        return {"entry_point": self.entry_point, "state": self.state,
                "reasons": list(self.reasons), "notes": list(self.notes),
                "fingerprint": self.fingerprint, "locked_fingerprint": self.locked,
                "absent_outputs": list(self.absent)}


@dataclass(frozen=True)
class Report:
    lock_file: str
    steps: tuple[StepStatus, ...]
    orphans: tuple[str, ...] = ()  # entries of the lock for entry points the project lacks
    notes: tuple[str, ...] = ()
    # entry points whose steps could not be resolved (a parameter without a default, neither
    # given nor locked), each with why: not proven up to date
    unjudged: tuple[str, ...] = ()

    @property
    def current(self) -> bool:
        return not self.unjudged and all(s.state == UP_TO_DATE for s in self.steps)

    def to_json(self) -> dict[str, Any]:
        return {"format": STATUS_FORMAT, "lock": self.lock_file, "current": self.current,
                "steps": [s.to_json() for s in self.steps], "orphans": list(self.orphans),
                "notes": list(self.notes), "unjudged": list(self.unjudged)}


def judge(root: str, steps: list[Step], lock: Lock | None) -> list[StepStatus]:
    """Each step (in order: needs first, as a plan lists them, fingerprints not yet taken
    from what they receive) against its lock entry."""
    from mlproject.runner.facts.received import content_md5

    entries: Mapping[str, LockEntry] = lock.entries if lock else {}
    done: dict[str, Step] = {}
    found: dict[str, StepStatus] = {}
    outputs: dict[str, dict[str, str | None]] = {}
    for planned in steps:
        name = planned.entry_point
        paths = {p: content_md5(root, path, save=False) for p, path in planned.basis.hashed.items()}
        upstream: dict[str, Any] = {}
        for need in planned.basis.chained:
            if not done[need].outputs:  # its fingerprint: the lock's when it is up to date
                current = found[need].state == UP_TO_DATE
                upstream[need] = entries[need].fingerprint if current else done[need].fingerprint
                continue
            # absent and up to date: what the lock says it wrote is what re-running writes
            stand_in = entries[need].outputs if found[need].state == UP_TO_DATE else {}
            upstream[need] = {out: md5 if md5 is not None else stand_in.get(out)
                              for out, md5 in outputs[need].items()}
        step = done[name] = planned.received(paths, upstream)
        mine = outputs[name] = {out: content_md5(root, out, links="record", save=False)
                                for out in step.outputs}
        entry = entries.get(name)
        if entry is None:
            found[name] = StepStatus(name, NEVER_RUN, (), step.fingerprint, None)
            continue
        reasons, notes = explain(root, step, entry, mine)
        state = STALE if reasons else UP_TO_DATE
        absent = tuple(out for out, md5 in mine.items() if md5 is None)
        found[name] = StepStatus(name, state, tuple(reasons), step.fingerprint,
                                 entry.fingerprint, absent, tuple(notes))
    return list(found.values())


def _short(value: Any, width: int = 100) -> str:
    text = "absent" if value is None else repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def _hash(value: Any) -> str:
    return "absent" if value is None else str(value)[:12] if len(str(value)) > 16 else str(value)


def _changes(what: str, old: Mapping[str, Any], new: Mapping[str, Any],
             shown: Any = _short) -> list[str]:
    said = []
    for key in sorted(set(old) | set(new)):
        if key not in new:
            said.append(f"{what} {key}: removed (was {shown(old[key])})")
        elif key not in old:
            said.append(f"{what} {key}: added ({shown(new[key])})")
        elif old[key] != new[key]:
            said.append(f"{what} {key}: {shown(old[key])} -> {shown(new[key])}")
    return said


LOCAL_NOTE = ("runs with the local interpreter: its path or installed distributions differ "
              "from the lock's (not stale: only its Python version and platform are compared); "
              "declare an environment to make this checkable")


def explain(root: str, step: Step, entry: LockEntry,
            outputs: Mapping[str, str | None]) -> tuple[list[str], list[str]]:
    """What differs between the step now and its lock entry, component by component, each in
    one line (old -> new): (reasons it is stale, notes that do not make it so). No reason:
    up to date."""
    now = lockfile.planned(step, root)
    said = _changes("parameter", entry.parameters, now.parameters)
    if entry.command != now.command and entry.parameters == now.parameters:
        said.append(f"command: {_short(entry.command)} -> {_short(now.command)}")
    if entry.code != now.code:
        said.append(f"code: {_hash(entry.code)} -> {_hash(now.code)} (the project's files "
                    "changed)")
    env_said, notes = _environment(entry.environment, now.environment)
    said.extend(env_said)
    said.extend(_data(entry.data, now.data, step, notes))
    old_in, new_in = entry.received, now.received
    said.extend(_changes("path parameter", old_in.get("paths", {}), new_in.get("paths", {}),
                         lambda v: f"content {_hash(v)}"))
    old_up, new_up = old_in.get("upstream", {}), new_in.get("upstream", {})
    for need in sorted(set(old_up) | set(new_up)):
        old, new = old_up.get(need), new_up.get(need)
        if old == new:
            continue
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            said.extend(_changes(f"upstream {need}: output", old, new, _hash))
        else:
            said.append(f"upstream {need}: {_hash(old)} -> {_hash(new)}")
    for out, md5 in sorted(outputs.items()):
        if md5 is not None and entry.outputs.get(out) != md5:
            said.append(f"output {out}: {_hash(entry.outputs.get(out))} -> {_hash(md5)} "
                        "(changed since the locked run)")
    if not said and entry.fingerprint not in (step.fingerprint, _with_stand_ins(step, entry)):
        said.append(f"fingerprint: {_hash(entry.fingerprint)} -> {_hash(step.fingerprint)} "
                    "(what mlproject puts in it changed: another mlproject version, or the "
                    "MLproject format)")
    return said, notes


def _with_stand_ins(step: Step, entry: LockEntry) -> str:
    """The step's fingerprint with the lock's values in place of what this machine cannot
    prove (judged by their own rules): the local interpreter, the md5 of data not fetched."""
    from dataclasses import replace

    fixed = dict(step.basis.fixed)
    local = step.environment.kind == "local" and entry.environment.get("kind") == "local"
    if local or _same_pins_other_patch(entry.environment, lockentry.environment_of(step)):
        fixed["environment"] = entry.environment.get("input")
    data = {name: dict(value) for name, value in fixed.get("data", {}).items()}
    for name, pin in step.data.items():
        if "pending" in pin and name in entry.data and name in data:
            data[name]["md5"] = entry.data[name].get("md5")
    fixed["data"] = data
    return replace(step.basis, fixed=fixed).digest()


def _environment(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    name = f"environment {new.get('name')}"
    if (old.get("name"), old.get("kind")) != (new.get("name"), new.get("kind")):
        return [f"environment: {old.get('name')} ({old.get('kind')}) -> {new.get('name')} "
                f"({new.get('kind')})"], []
    if old.get("input") == new.get("input") and old.get("digest") == new.get("digest"):
        return [], []
    if new.get("kind") == "local":
        # what a lock made on a laptop can prove on a CI runner: the Python version and the
        # platform; the interpreter's path and what is installed in it are not the project's
        said = []
        was, now = _minor(old.get("python")), _minor(new.get("python"))
        if was and now and was != now:
            said.append(f"{name}: Python {was} -> {now}")
        if old.get("platform") and old.get("platform") != new.get("platform"):
            said.append(f"{name}: platform {old.get('platform')} -> {new.get('platform')}")
        return said, [] if said else [LOCAL_NOTE]
    if _same_pins_other_patch(old, new):
        return [], [f"{name}: the lock's pins were built for Python {old.get('python')}, "
                    f"this machine has {new.get('python')}: the same pins, the same X.Y"]
    before, after = old.get("packages") or {}, new.get("packages") or {}
    if before and after and before != after:
        return _changes(f"{name}: package", before, after, str), []
    return [f"{name}: {_hash(old.get('input'))} -> {_hash(new.get('input'))} (its "
            "requirements or lock changed)"], []


def _same_pins_other_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """A python environment whose pins are the lock's, for an interpreter of the same X.Y on
    the same platform, differing only in its patch release (a laptop's 3.11.7, a CI runner's
    3.11.9): what a lock can prove across machines, as for the local interpreter."""
    return (new.get("kind") == "python" and old.get("digest") is not None
            and old.get("digest") == new.get("digest")
            and _minor(old.get("python")) is not None
            and _minor(old.get("python")) == _minor(new.get("python"))
            and old.get("platform") == new.get("platform"))


def _minor(version: Any) -> str | None:
    return ".".join(version.split(".")[:2]) if isinstance(version, str) else None


def _data(old: Mapping[str, Any], new: Mapping[str, Any], step: Step,
          notes: list[str]) -> list[str]:
    said = []
    for name in sorted(set(old) | set(step.data)):
        pin = step.data.get(name, {})
        if "pending" in pin:  # another repository, not fetched here: what is declared is seen
            locked = old.get(name)
            declared = [k for k in ("path", "repo", "rev") if locked and pin.get(k) != locked[k]]
            if locked is None or declared or pin.get("md5") not in (None, locked.get("md5")):
                said.append(f"data {name}: not pinned here ({pin['pending']}), and declared "
                            "otherwise than the lock's pin")
            else:
                notes.append(f"data {name}: not fetched here ({pin['pending']}): the lock's "
                             f"pin (md5 {_hash(locked.get('md5'))}) is taken as it is")
        elif name not in old:
            said.append(f"data {name}: added ({new[name].get('path')} md5 "
                        f"{_hash(new[name].get('md5'))})")
        elif name not in new:
            said.append(f"data {name}: removed")
        elif old[name] != new[name]:
            a, b = old[name], new[name]
            parts = [f"{key} {_short(a.get(key), 60)} -> {_short(b.get(key), 60)}"
                     for key in ("path", "repo", "rev") if a.get(key) != b.get(key)]
            if a.get("md5") != b.get("md5"):
                parts.append(f"md5 {_hash(a.get('md5'))} -> {_hash(b.get('md5'))}")
                parts += [f"{key} {a.get(key)} -> {b.get(key)}" for key in ("size", "nfiles")
                          if a.get(key) != b.get(key)]
            said.append(f"data {name}: {', '.join(parts) or 'pinned at another commit'}")
    return said


def render(report: Report) -> str:
    lines = []
    for s in report.steps:
        absent = f" (outputs not in the workspace: {', '.join(s.absent)})" if s.absent else ""
        lines.append(f"{s.entry_point}: {s.state}{absent if s.state == UP_TO_DATE else ''}")
        lines.extend(f"  {reason}" for reason in s.reasons)
        lines.extend(f"  note: {note}" for note in s.notes)
    behind = [s for s in report.steps if s.state != UP_TO_DATE]
    if report.orphans:
        lines.append(f"{report.lock_file} also holds {', '.join(report.orphans)}, which the "
                     "project no longer declares")
    lines.extend(f"not judged: {n}" for n in report.unjudged)
    lines.extend(f"note: {n}" for n in report.notes)
    if behind:
        count = len(report.steps)
        lines.append(f"{len(behind)} of {count} step{'s' if count > 1 else ''} not up to date "
                     f"with {report.lock_file}: `mlproject run` runs them and writes the lock")
    elif not report.unjudged:
        lines.append(f"every step is up to date with {report.lock_file}")
    if report.unjudged:
        lines.append("give their parameters with -e ENTRY -P NAME=VALUE to judge them")
    return "\n".join(lines)
