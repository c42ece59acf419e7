"""`mlproject sweep NAME` (a sweep of the MLproject file), `mlproject sweep -e ENTRY --grid ...
| --random N --space ...` (one given here), and `mlproject sweep show ID [--json]`."""
from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from mlproject.runner.cli.common import EXIT_USAGE, error, load_spec, reported
from mlproject.runner.util.console import say
from mlproject.spec import SpecError

if TYPE_CHECKING:
    from mlproject.runner.plan import Plan
    from mlproject.spec import Spec
    from mlproject.spec.model import Sweep


def main(args: argparse.Namespace) -> int:
    if args.name == "show":
        return _show(args)
    if args.sweep_id is not None:
        return error(f"unexpected argument {args.sweep_id!r} (`mlproject sweep NAME`, or "
                     "`mlproject sweep show ID`)")
    from mlproject.runner.cli.plan_cmd import backend_settings

    settings = backend_settings(args.backend, args.backend_config)
    if isinstance(settings, int):
        return settings
    spec = load_spec(args)
    if isinstance(spec, SpecError):
        return EXIT_USAGE
    sweep = _sweep(args, spec)
    if isinstance(sweep, int):
        return sweep
    from mlproject.runner.sweeps.points import points

    chosen = points(sweep)
    if not chosen:
        return error("the sweep has no points")
    plans = reported(lambda: _plans(args, spec, sweep, chosen))
    if isinstance(plans, int):
        return plans
    from mlproject.runner import execute
    from mlproject.runner.sweeps import run, store

    metric = args.metric or sweep.metric
    goal = args.goal or sweep.goal
    described = {"id": store.new_id(sweep.name or sweep.entry_point), "name": sweep.name,
                 "entry_point": sweep.entry_point, "metric": metric, "goal": goal}
    options = execute.Options(backend=args.backend, force=args.force, settings=settings)
    knobs = run.Settings(jobs=args.jobs or sweep.jobs,
                         max_failures=(args.max_failures if args.max_failures is not None
                                       else sweep.max_failures), force=args.force,
                         show_output=not args.json)
    try:
        code, data = run.run(plans, described, options, knobs)
    except execute.PreflightError as exc:
        return error(f"cannot start:\n{exc}")
    if data:
        _print(args.path if spec is None else spec.root, data, args.json)
    return code


def _plans(args: argparse.Namespace, spec: Spec, sweep: Sweep,
           chosen: list[dict[str, str]]) -> list[Plan]:
    """A plan per point, from one observation of the project (acquired once)."""
    from mlproject.runner.facts.acquire import acquire_facts
    from mlproject.runner.facts.observe import observe_facts
    from mlproject.runner.resolve import Overrides, ResolveError, resolve

    facts = observe_facts(spec.root, spec, sweep.entry_point, env_manager=args.env_manager,
                          log=say)
    facts = acquire_facts(spec.root, spec, facts, say)
    plans = []
    for i, point in enumerate(chosen):
        given = tuple(f"{k}={v}" for k, v in point.items())
        try:
            plans.append(resolve(spec, Overrides(sweep.entry_point, given, args.env_manager),
                                 facts))
        except ResolveError as exc:
            shown = " ".join(given)
            raise ResolveError(f"point {i} ({shown[:200]}): {exc}") from None
    return plans


def _sweep(args: argparse.Namespace, spec: Spec) -> Sweep | int:
    """The sweep asked for: the file's NAME, or the one the flags give."""
    given_here = [f for f, v in (("--grid", args.grid), ("--random", args.random),
                                 ("--space", args.space), ("-P", args.param)) if v]
    if args.name is not None:
        if args.entry_point is not None or given_here:
            return error(f"sweep {args.name!r} is declared in the MLproject file: "
                         f"{', '.join(['-e'] * (args.entry_point is not None) + given_here)} "
                         "cannot be given with it (edit the file, or give no NAME)")
        found = spec.sweeps.get(args.name)
        if found is None:
            declared = ", ".join(spec.sweeps) or "none"
            return error(f"no sweep {args.name!r} in {spec.file} (declared: {declared}); "
                         "or give one here: mlproject sweep -e ENTRY --grid NAME=V1,V2")
        return found
    if args.entry_point is None:
        declared = ", ".join(spec.sweeps) or "none"
        return error(f"name a sweep of the MLproject file (declared: {declared}), or give one "
                     "with -e ENTRY and --grid or --random")
    raw = _raw(args)
    if isinstance(raw, str):
        return error(raw)
    from mlproject.spec.sweeps import build

    problems: list[str] = []

    def report(path: tuple[Any, ...], message: str) -> None:
        flag = {"grid": "--grid", "random": "--space", "parameters": "-P",
                "entry_point": "-e"}.get(str(path[0]), str(path[0]))
        name = next((str(p) for p in path[1:] if p not in ("space", "range")
                     and not isinstance(p, int)), "")
        problems.append(f"{flag} {name}: {message}" if name and flag != "-e" else
                        f"{flag}: {message}")

    made = build(None, raw, spec.entry_points, report)
    if made is None:
        return error("the sweep does not fit the entry point:\n  " + "\n  ".join(problems))
    return made


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def _raw(args: argparse.Namespace) -> dict[str, Any] | str:
    """The flags as a sweep's declaration (the shape `sweeps:` has in the file), or why not."""
    if args.space and not args.random:
        return "--space is where --random draws from: give --random N too"
    if bool(args.grid) == bool(args.random):
        return "give the points with exactly one of --grid or --random N (with --space)"
    raw: dict[str, Any] = {"entry_point": args.entry_point}
    fixed = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep or not name:
            return f"-P {item!r}: expected NAME=VALUE"
        fixed[name] = value
    if fixed:
        raw["parameters"] = fixed
    grid: dict[str, Any] = {}
    for item in args.grid:
        name, sep, values = item.partition("=")
        if not sep or not name or not values:
            return f"--grid {item!r}: expected NAME=V1,V2,... or NAME=range:START:STOP:STEP"
        if name in grid:
            return f"--grid {name}: given twice"
        if values.startswith("range:"):
            parts = values.split(":")[1:]
            try:
                grid[name] = {"range": [_number(p) for p in parts]}
            except ValueError:
                return f"--grid {item!r}: range:START:STOP:STEP takes three numbers"
            if len(parts) != 3:
                return f"--grid {item!r}: range:START:STOP:STEP takes three numbers"
        else:
            grid[name] = values.split(",")
    if grid:
        raw["grid"] = grid
    if args.random:
        space: dict[str, Any] = {}
        for item in args.space:
            name, sep, body = item.partition("=")
            kind, _, rest = body.partition(":")
            if not sep or not name or kind not in ("uniform", "loguniform", "randint", "choice"):
                return (f"--space {item!r}: expected NAME=uniform:LOW:HIGH, loguniform:LOW:HIGH, "
                        "randint:LOW:HIGH or choice:V1,V2,...")
            if kind == "choice":
                space[name] = {"choice": rest.split(",")}
                continue
            try:
                bounds = [_number(p) for p in rest.split(":")]
            except ValueError:
                return f"--space {item!r}: {kind} takes two numbers, LOW:HIGH"
            if len(bounds) != 2 or (kind == "randint" and not all(isinstance(b, int)
                                                                   for b in bounds)):
                what = "integers" if kind == "randint" else "numbers"
                return f"--space {item!r}: {kind} takes two {what}, LOW:HIGH"
            space[name] = {kind: bounds}
        if not space:
            return "--random N draws from a --space: give at least one"
        raw["random"] = {"n": args.random, "seed": args.seed, "space": space}
    return raw


def _print(root: str, data: dict[str, Any], as_json: bool) -> None:
    from mlproject.runner.state import index
    from mlproject.runner.sweeps import table

    shown = table.points(data, index.rows(root))
    if as_json:
        sys.stdout.write(json.dumps(table.as_json(data, shown), indent=2) + "\n")
    else:
        sys.stdout.write(table.text(data, shown))


def _show(args: argparse.Namespace) -> int:
    if args.sweep_id is None:
        return error("sweep show takes the sweep's id: mlproject sweep show ID")
    import os

    from mlproject.runner.sweeps import store

    root = args.path if os.path.isdir(args.path) else os.path.dirname(os.path.abspath(args.path))
    try:
        data = store.read(root, args.sweep_id)
    except store.SweepError as exc:
        return error(str(exc))
    _print(root, data, args.json)
    return 0
