"""`mlproject run`: resolve the plan, then execute it on a backend (or print it: --dry-run)."""
from __future__ import annotations

import argparse

from mlproject.runner.cli.common import error, make_plan
from mlproject.runner.cli.plan_cmd import show


def main(args: argparse.Namespace) -> int:
    made = make_plan(args, allow_resolve=not args.dry_run, observe=args.dry_run)
    if isinstance(made, int):
        return made
    plan, facts = made
    if args.dry_run:
        show(plan, args.json)
        return 0
    from mlproject.runner.execute import Options, PreflightError, execute

    try:
        options = Options(backend=args.backend, force=args.force, pull=args.pull)
        return execute(plan, options, facts.envs, facts.data)
    except PreflightError as exc:
        return error(f"cannot start:\n{exc}")
