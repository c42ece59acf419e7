"""`mlproject lock`: resolve each environment the project (or an entry point) uses into its lock
file, to be committed; a lock mlproject wrote before is written again from its inputs."""
from __future__ import annotations

import argparse

from mlproject.runner.cli.common import EXIT_USAGE, error, load_spec
from mlproject.runner.envs.base import EnvError
from mlproject.runner.envs.kinds import kind
from mlproject.runner.facts import closure
from mlproject.runner.util import exitcodes, extras
from mlproject.runner.util.console import say
from mlproject.spec import SpecError


def main(args: argparse.Namespace) -> int:
    spec = load_spec(args)
    if isinstance(spec, SpecError):
        return EXIT_USAGE
    if args.entry_point is not None and args.entry_point not in spec.entry_points:
        return error(spec.no_entry_point(args.entry_point))
    if args.entry_point is None:
        names = list(spec.environments)
    else:
        used = (spec.entry_points[n].environment for n in closure(spec, args.entry_point))
        names = list(dict.fromkeys(n for n in used if n))
    lockable = [spec.environments[n] for n in names if kind(spec.environments[n].kind).locker]
    if not lockable:
        say("nothing to lock: no python or conda environment is declared")
        return 0
    failed = 0
    unequipped = False  # an extra is missing: install it, nothing was attempted
    for env in lockable:
        try:
            written = kind(env.kind).lock(spec.root, env, say)
        except EnvError as exc:
            error(f"environment {env.name!r}: {exc}")
            failed += 1
            unequipped = unequipped or isinstance(exc, extras.MissingExtra)
            continue
        except OSError as exc:  # the lock cannot be written: a read-only project, a full disk
            error(f"environment {env.name!r}: cannot write its lock: "
                  f"{exc.strerror or exc}{f' ({exc.filename})' if exc.filename else ''}")
            failed += 1
            continue
        print(written)
    if unequipped:
        return exitcodes.USAGE
    return exitcodes.INCOMPLETE if failed else 0
