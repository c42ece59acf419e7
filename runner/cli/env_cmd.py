"""`mlproject env list|path|prune`: the environments in the cache."""
from __future__ import annotations

import argparse
import json
import sys
import time

from mlproject.runner.cli.common import EXIT_USAGE, error, load_spec
from mlproject.runner.envs.store import EnvStore
from mlproject.runner.util.console import say
from mlproject.spec import SpecError
from mlproject.spec.units import seconds


def _list(args: argparse.Namespace) -> int:
    entries = EnvStore().entries()
    if args.json:
        sys.stdout.write(json.dumps(entries, indent=2) + "\n")
        return 0
    if not entries:
        say(f"no environments in {EnvStore().root}")
        return 0
    now = time.time()
    for entry in entries:
        marker = entry["marker"]
        age = f"used {(now - entry['last_used']) / 86400:.1f}d ago"
        if marker is None:  # the store has checked its shape: a dict with a dict recipe
            sys.stdout.write(f"{entry['path']}  {entry['problem']}  {age}\n")
            continue
        recipe = marker["recipe"]
        what = recipe.get("version") or recipe.get("platform") or ""
        pins = recipe.get("pins") or recipe.get("packages") or []
        count = len(pins) if isinstance(pins, list) else "?"
        sys.stdout.write(f"{entry['path']}  {marker['kind']} {what}  {count} packages  "
                         f"{recipe.get('lock', '')}  {age}\n")
    return 0


def _path(args: argparse.Namespace) -> int:
    from mlproject.runner.envs.base import EnvError
    from mlproject.runner.envs.recipes import acquired_recipe

    spec = load_spec(args)
    if isinstance(spec, SpecError):
        return EXIT_USAGE
    entry = spec.entry_points.get(args.entry_point)
    if entry is None:
        return error(spec.no_entry_point(args.entry_point))
    if entry.environment is None:
        return error(f"entry point {entry.name!r} declares no environment: it runs in the "
                     "current interpreter")
    try:
        recipe = acquired_recipe(spec.root, spec.environments[entry.environment], say)
        if recipe is None:
            return error(f"environment {entry.environment!r} is an image: nothing is built")
        prefix, _ = EnvStore().ensure(recipe, say)
    except EnvError as exc:
        return error(f"environment {entry.environment!r}: {exc}")
    print(prefix)
    return 0


def _prune(args: argparse.Namespace) -> int:
    older = None
    if args.older_than is not None:
        shown = args.older_than if len(args.older_than) <= 40 else args.older_than[:40] + "..."
        try:
            older = seconds(args.older_than)
        except ValueError:
            return error(f"--older-than {shown!r}: expected a duration with its unit, such as "
                         "30d, 12h or 1h30m")
        if older <= 0:
            return error(f"--older-than {shown!r}: expected more than nothing (without "
                         "--older-than, every environment not in use is removed)")
    try:
        removed, held = EnvStore().prune(older)
    except OSError as exc:
        return error(f"cannot prune {EnvStore().root}: {exc.strerror or exc}")
    for path in removed:
        print(path)
    for path in held:
        say(f"kept {path}: a run is using it")
    return 0


def main(args: argparse.Namespace) -> int:
    return {"list": _list, "path": _path, "prune": _prune}[args.env_verb](args)
