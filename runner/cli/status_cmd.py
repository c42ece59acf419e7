"""`mlproject status`: every step (of every entry point, or of `-e ENTRY` and what it needs) up
to date with mlproject.lock, stale (and why), or never run. `--check` exits 1 unless every one
is up to date: CI proves with it that the committed lock matches the code."""
from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from mlproject.runner.cli.common import EXIT_USAGE, error, load_spec, reported
from mlproject.runner.plan import Step
from mlproject.runner.util import exitcodes
from mlproject.runner.util.console import say
from mlproject.spec import Spec, SpecError

if TYPE_CHECKING:
    from mlproject.runner.gitops.lockfile import Lock


def main(args: argparse.Namespace) -> int:
    from mlproject.runner.gitops import lockfile, staleness

    spec = load_spec(args)
    if isinstance(spec, SpecError):
        return EXIT_USAGE
    if args.param and args.entry_point is None:
        return error("-P is given to one entry point: name it with -e ENTRY")
    if args.entry_point is not None and args.entry_point not in spec.entry_points:
        return error(spec.no_entry_point(args.entry_point))
    try:
        lock = lockfile.read(spec.root)
    except lockfile.LockError as exc:
        return error(str(exc))
    if args.entry_point is not None:
        targets = [args.entry_point]
    else:  # every entry point no other needs: their closures hold every step
        needed = {n for e in spec.entry_points.values() for n in e.needs}
        targets = [n for n in spec.entry_points if n not in needed]

    def judged() -> staleness.Report:
        from mlproject.runner.facts.observe import observe_facts
        from mlproject.runner.resolve import Overrides, ResolveError, resolve

        facts = observe_facts(spec.root, spec, targets, env_manager=args.env_manager, log=say)
        steps: dict[str, Step] = {}
        unjudged = []
        for target in targets:
            given = _given(spec, target, args.param, lock)
            try:
                plan = resolve(spec, Overrides(target, given, args.env_manager), facts)
            except ResolveError as exc:
                if args.entry_point is not None:
                    raise
                unjudged.append(f"{target}: {exc}")  # the others are still judged
                continue
            for step in plan.steps:
                steps.setdefault(step.entry_point, step)
        found = staleness.judge(spec.root, list(steps.values()), lock)
        orphans = () if args.entry_point else tuple(
            sorted(n for n in (lock.entries if lock else {}) if n not in spec.entry_points))
        notes = () if lock else (f"there is no {lockfile.LOCK_FILE} yet: `mlproject run` "
                                 "writes it",)
        return staleness.Report(lockfile.LOCK_FILE, tuple(found), orphans, notes,
                                tuple(unjudged))

    report = reported(judged)
    if isinstance(report, int):
        return report
    if args.json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(staleness.render(report) + "\n")
    return exitcodes.NOT_CURRENT if args.check and not report.current else exitcodes.OK


def _given(spec: Spec, target: str, user: list[str], lock: Lock | None) -> tuple[str, ...]:
    """`-P` for `target`: the user's values, and for a parameter without a default that the
    user does not give, the value of the locked run (else no such step could be judged)."""
    import os

    from mlproject.runner.resolve import parse_params
    from mlproject.spec import params

    given = parse_params(user)
    entry = lock.entries.get(target) if lock else None
    if entry is not None:
        for name, param in spec.entry_points[target].parameters.items():
            value = entry.parameters.get(name)
            if param.default is None and name not in given and value is not None:
                if param.type == "path" and not params.is_uri(value):
                    value = os.path.join(spec.root, value)  # the lock's: relative to the project
                given[name] = value
    return tuple(f"{k}={v}" for k, v in given.items())
