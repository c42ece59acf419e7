"""`mlproject run`: observe the facts, acquire what is missing, resolve the plan, then execute it
on a backend (or print it: --dry-run, which acquires nothing). `run --plan FILE` executes a plan
made before (`mlproject plan --json > FILE`), elsewhere perhaps: moved to this checkout, checked
against it (refused, saying what moved), what it left pending acquired first."""
from __future__ import annotations

import argparse

from mlproject.runner.cli.common import EXIT_USAGE, error, load_spec, make_plan, reported
from mlproject.runner.cli.plan_cmd import backend_settings, show
from mlproject.runner.plan import Plan
from mlproject.runner.util.console import say
from mlproject.spec import SpecError


def main(args: argparse.Namespace) -> int:
    # before anything is cloned or resolved: a wrong setting is the user's to fix first
    detached = getattr(args, "detach", False)
    if detached and args.dry_run:
        return error("--detach runs the plan: it cannot be given with --dry-run")
    settings = backend_settings(args.backend, getattr(args, "backend_config", None))
    if isinstance(settings, int):
        return settings
    if getattr(args, "docker_args", None):
        if args.backend != "docker":
            return error("-A/--docker-args are options of `docker run`: give them with "
                         "--backend docker")
        from mlproject.runner.backends.docker.argv import ArgvError, docker_args

        try:
            settings["extra_args"] = [*settings.get("extra_args", []), *docker_args(args.docker_args)]
        except ArgvError as exc:
            return error(str(exc))
    for flag, value in (("--experiment-name", getattr(args, "experiment_name", None)),
                        ("--run-name", getattr(args, "run_name", None))):
        if value is not None and (not value.strip() or len(value) > 250 or not value.isprintable()):
            return error(f"{flag} {value[:40]!r}: a name of 1 to 250 printable characters")
    plan_file = getattr(args, "plan", None)
    if plan_file is not None:
        made = _from_file(args, plan_file)
    else:
        made = make_plan(args, acquire=not args.dry_run, received=args.dry_run)
    if isinstance(made, int):
        return made
    if args.dry_run:
        show(made, args.json)
        return 0
    from mlproject.runner.execute import Options, PreflightError, execute

    try:
        options = Options(backend=args.backend, force=args.force, pull=args.pull,
                          settings=settings, allow_dirty=getattr(args, "allow_dirty", False),
                          queue_timeout=getattr(args, "queue_timeout", None),
                          jobs=getattr(args, "jobs", 1),
                          experiment=getattr(args, "experiment_name", None),
                          run_name=getattr(args, "run_name", None))
        if detached:  # a supervisor of its own runs it; the run ids are printed at once
            from mlproject.runner import detach

            return detach.start(made, options)
        return execute(made, options)
    except PreflightError as exc:
        return error(f"cannot start:\n{exc}")


def _from_file(args: argparse.Namespace, path: str) -> Plan | int:
    """The plan in `path`, moved to the project at PATH and checked against it."""
    from mlproject.runner import plancheck, planfile

    given = [flag for flag, value in (("-e", args.entry_point != "main"), ("-P", args.param),
                                      ("--env", args.env_manager)) if value]
    if given:
        return error(f"--plan: {', '.join(given)} cannot be given with a plan: it holds its "
                     "entry point, parameters and environment")
    try:
        planned = planfile.read(path)
    except planfile.PlanFileError as exc:
        return error(str(exc))
    spec = load_spec(args)
    if isinstance(spec, SpecError):
        return EXIT_USAGE

    def checked() -> Plan | int:
        from mlproject.runner.facts.acquire import acquire_facts
        from mlproject.runner.facts.observe import observe_facts
        from mlproject.runner.resolve import Overrides, resolve

        plan = plancheck.rebase(planned, spec.root)
        unfit = plancheck.unbuildable(plan)
        if unfit:
            return error(f"{path}: the plan cannot run on this machine:\n  " + "\n  ".join(unfit))
        target, params, env_manager = plancheck.overrides_of(plan)
        facts = observe_facts(spec.root, spec, target, env_manager=env_manager, log=say)
        # Acquired here: what the plan left pending, and data it pinned that this checkout
        # cannot see without fetching (to check the pin); an environment the plan holds pins
        # for is built from them, never resolved again.
        # (--dry-run acquires nothing: it checks what it can see, and shows the plan)
        pending_envs = {s.environment.name for s in plan.steps if s.environment.pending}
        if not args.dry_run:
            facts = acquire_facts(spec.root, spec, facts, say, envs=pending_envs)
        here = resolve(spec, Overrides(target, params, env_manager), facts)
        moved = plancheck.moved(plan, here)
        if moved:
            return error(f"{path}: the plan no longer matches {spec.root} (it was made in "
                         f"{planned.project}):\n  " + "\n  ".join(moved)
                         + "\nmake the plan again (`mlproject plan --json`) to run what is here")
        done = plancheck.completed(plan, here)
        if getattr(args, "git_source", None) is not None:  # PATH was a Git URL, checked out
            from dataclasses import replace

            done = replace(done, source=args.git_source)
        return done

    found = reported(checked)
    return found
