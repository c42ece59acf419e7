"""What several verbs share: loading the spec, resolving the plan, reporting errors."""
from __future__ import annotations

import argparse
import sys

from mlproject.runner.plan import Plan
from mlproject.spec import Spec, SpecError, load

EXIT_USAGE = 2


def error(message: str) -> int:
    sys.stderr.write(f"mlproject: error: {message}\n")
    return EXIT_USAGE


def load_spec(args: argparse.Namespace) -> Spec | SpecError:
    """The spec, its warnings printed; or the error, already printed."""
    try:
        spec = load(args.path, strict=args.strict)
    except SpecError as exc:
        sys.stderr.write(f"{exc}\n")
        return exc
    for warning in spec.warnings:
        sys.stderr.write(f"{warning}\n")
    return spec


def make_plan(args: argparse.Namespace) -> Plan | int:
    """The plan for the verb's arguments, or the exit code after reporting why there is none."""
    from mlproject.runner import facts, proc
    from mlproject.runner.resolve import Overrides, ResolveError, resolve

    spec = load_spec(args)
    if isinstance(spec, SpecError):
        return EXIT_USAGE
    overrides = Overrides(args.entry_point, tuple(args.param), args.env_manager)
    try:
        return resolve(spec, overrides, facts.gather(spec.root))
    except ResolveError as exc:
        return error(str(exc))
    except proc.ProcError as exc:
        return error(f"cannot read the project's Git state: {exc}")
