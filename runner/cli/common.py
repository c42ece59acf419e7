"""What several verbs share: loading the spec, resolving the plan, reporting errors."""
from __future__ import annotations

import argparse
import sys

from mlproject.runner.facts import Facts
from mlproject.runner.plan import Plan
from mlproject.runner.util import exitcodes
from mlproject.runner.util.console import say
from mlproject.spec import Spec, SpecError

EXIT_USAGE = exitcodes.USAGE  # the name the verbs import from here


def error(message: str) -> int:
    sys.stderr.write(f"mlproject: error: {message}\n")
    return EXIT_USAGE


def load_spec(args: argparse.Namespace) -> Spec | SpecError:
    """The spec, its warnings printed; or the error, already printed."""
    from mlproject.runner.state.speccache import load_cached

    try:
        spec = load_cached(args.path, strict=args.strict)
    except SpecError as exc:
        sys.stderr.write(f"{exc}\n")
        return exc
    for warning in spec.warnings:
        sys.stderr.write(f"{warning}\n")
    return spec


def make_plan(args: argparse.Namespace, *, allow_resolve: bool = False,
              observe: bool = True) -> tuple[Plan, Facts] | int:
    """The plan for the verb's arguments and the facts behind it, or the exit code after
    reporting why there is none. `allow_resolve`: unlocked environments may be resolved now.
    `observe`: fingerprints from what the steps would receive from the workspace as it is now
    (`run` takes them again right before each step instead)."""
    from mlproject.runner import facts
    from mlproject.runner.data import DataError
    from mlproject.runner.envs.base import EnvError
    from mlproject.runner.resolve import Overrides, ResolveError, resolve
    from mlproject.runner.util import proc

    spec = load_spec(args)
    if isinstance(spec, SpecError):
        return EXIT_USAGE
    overrides = Overrides(args.entry_point, tuple(args.param), args.env_manager)
    try:
        gathered = facts.gather(spec.root, spec, args.entry_point, env_manager=args.env_manager,
                                allow_resolve=allow_resolve, log=say)
        plan = resolve(spec, overrides, gathered)
        return (facts.observe_plan(plan) if observe else plan), gathered
    except ResolveError as exc:
        return error(str(exc))
    except (EnvError, DataError) as exc:
        return error(str(exc))
    except proc.ProcError as exc:
        return error(f"cannot read the project's Git state: {exc}")
