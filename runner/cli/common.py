"""What several verbs share: loading the spec, resolving the plan, reporting errors."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from mlproject.runner.util import exitcodes
from mlproject.runner.util.console import say

if TYPE_CHECKING:  # the plan's modules load with the verbs that plan, not with every verb
    # (nor the format's with those that read no MLproject file: `runs`, `logs`, `cancel`)
    from mlproject.runner.plan import Plan
    from mlproject.spec import Spec, SpecError

EXIT_USAGE = exitcodes.USAGE  # the name the verbs import from here
T = TypeVar("T")


def error(message: str) -> int:
    sys.stderr.write(f"mlproject: error: {message}\n")
    return EXIT_USAGE


def load_spec(args: argparse.Namespace) -> Spec | SpecError:
    """The spec, its warnings printed; or the error, already printed."""
    from mlproject.runner.state.speccache import load_cached
    from mlproject.spec import SpecError

    problem = checked_out(args)
    if problem is not None:
        error(problem)
        return SpecError([])
    try:
        spec = load_cached(args.path, strict=args.strict)
    except SpecError as exc:
        sys.stderr.write(f"{exc}\n")
        return exc
    for warning in spec.warnings:
        sys.stderr.write(f"{warning}\n")
    return spec


def checked_out(args: argparse.Namespace) -> str | None:
    """Where PATH is a Git URL (the verbs with -v/--version: run, plan), its project checked
    out (once per process: `args.path` becomes the project's directory in the work tree, and
    `args.git_source` what the plan records of it); what is wrong, in words, otherwise."""
    import os

    from mlproject.runner.gitsource.url import looks_like_url

    version, refresh = getattr(args, "version", None), getattr(args, "refresh", False)
    # the verbs that take a Git URL have --refresh too (promote's --version is a model's)
    if not hasattr(args, "refresh") or getattr(args, "git_source", None) is not None:
        return None
    if not looks_like_url(args.path) or os.path.exists(args.path):
        if version is not None or refresh:
            return ("-v/--version and --refresh take a Git URL as PATH (a local repository: "
                    "file:///path/to/repo)")
        return None
    from mlproject.runner.gitsource import checkout, url
    from mlproject.runner.util import proc

    try:
        source = url.parse(args.path)
    except url.GitSourceError as exc:
        return str(exc)
    try:
        done = checkout.checkout(source, version, refresh=refresh, log=say)
    except url.GitSourceError as exc:
        return str(exc)
    except (proc.ProcError, OSError) as exc:
        return source.scrub(f"cannot check out {source.shown}: {exc}")
    args.path = done.project
    args.git_source = {"url": source.shown, "version": version, "commit": done.commit,
                       "subdirectory": source.subdirectory}
    return None


def make_plan(args: argparse.Namespace, *, acquire: bool = False,
              received: bool = True) -> Plan | int:
    """The plan for the verb's arguments, or the exit code after reporting why there is none.
    Facts are observed (`plan`, `run --dry-run`: nothing is cloned, fetched, resolved or
    written to the cache); `acquire`: what is not known yet is got first (`run`).
    `received`: fingerprints from what the steps would receive from the workspace as it is now
    (`run` takes them again right before each step instead)."""
    from mlproject.runner.facts.observe import observe_facts
    from mlproject.runner.resolve import Overrides
    from mlproject.spec import SpecError

    spec = load_spec(args)
    if isinstance(spec, SpecError):
        return EXIT_USAGE
    overrides = Overrides(args.entry_point, tuple(args.param), args.env_manager)

    def made() -> Plan:
        from dataclasses import replace

        from mlproject.runner.resolve import resolve

        found = observe_facts(spec.root, spec, args.entry_point, env_manager=args.env_manager,
                              log=say)
        if acquire:
            from mlproject.runner.facts.acquire import acquire_facts

            found = acquire_facts(spec.root, spec, found, say)
        plan = resolve(spec, overrides, found)
        if getattr(args, "git_source", None) is not None:
            plan = replace(plan, source=args.git_source)
        if not received:
            return plan
        from mlproject.runner.facts.received import received_plan

        return received_plan(plan)

    return reported(made)


def reported(make: Callable[[], T]) -> T | int:
    """`make()`, or the exit code after a clear message where the request, an environment,
    the data or the project's Git state is at fault."""
    from mlproject.runner.data import DataError
    from mlproject.runner.envs.base import EnvError
    from mlproject.runner.resolve import ResolveError
    from mlproject.runner.util import proc

    try:
        return make()
    except (ResolveError, EnvError, DataError) as exc:
        return error(str(exc))
    except proc.ProcError as exc:
        return error(f"cannot read the project's Git state: {exc}")
