"""`mlproject promote MODEL [--version X.Y.Z | --bump PART] [--stage STAGE] [--ref REF]
[--push REMOTE] [--force]`: tag a model version and/or a stage assignment, GTO's grammar."""
from __future__ import annotations

import argparse
import sys

from mlproject.runner.cli.common import error, load_spec
from mlproject.runner.gitops import promote
from mlproject.runner.util import exitcodes, proc
from mlproject.spec import Spec, SpecError

REFUSED = exitcodes.STEP_FAILED  # a check refused the promotion (1), as a failed gate is


def _staleness(args: argparse.Namespace) -> promote.Staleness:
    def stale(spec: Spec, entry_point: str) -> list[str]:
        """What `mlproject status` says of the model's pipeline, as reasons."""
        from mlproject.runner.cli.common import make_plan
        from mlproject.runner.gitops import lockfile, staleness

        planned = make_plan(argparse.Namespace(
            path=args.path, strict=args.strict, entry_point=entry_point, param=[],
            env_manager=None), received=False)
        if isinstance(planned, int):  # make_plan said why
            return [f"the status of {entry_point} cannot be computed (see above)"]
        try:
            lock = lockfile.read(spec.root)
        except lockfile.LockError as exc:
            return [str(exc)]
        reasons: list[str] = []
        for step in staleness.judge(spec.root, list(planned.steps), lock):
            if step.state != staleness.UP_TO_DATE:
                why = "; ".join(step.reasons) or "it has no entry in the lock"
                reasons.append(f"the lock is not current: {step.entry_point} is {step.state} ({why})")
        return reasons
    return stale


def main(args: argparse.Namespace) -> int:
    spec = load_spec(args)
    if isinstance(spec, SpecError):
        return exitcodes.USAGE
    request = promote.Request(args.model, args.version, args.bump, args.stage, args.ref, args.force)
    if args.push is not None and (not args.push or args.push.startswith("-")):
        return error(f"{args.push!r} is not a remote")
    try:
        promotion = promote.plan(spec, request, _staleness(args))
    except promote.PromoteError as exc:
        return error(str(exc))
    except promote.Refused as exc:
        sys.stderr.write(f"mlproject: promote {args.model} refused (--force tags anyway):\n")
        sys.stderr.write("".join(f"  - {why}\n" for why in exc.reasons))
        return REFUSED
    except proc.ProcError as exc:
        return error(f"cannot read the project's Git state: {exc}")
    for why in promotion.overridden:
        sys.stderr.write(f"mlproject: warning: --force: {why}\n")
    for note in promotion.notes:
        sys.stderr.write(f"mlproject: {note}\n")
    try:
        made = promote.create(spec.root, promotion)
    except proc.ProcError as exc:
        return error(f"cannot create the tag: {exc}")
    for name in made:
        sys.stdout.write(f"{name}\n")
    if args.push is not None and made:
        try:
            promote.push(spec.root, args.push, made)
        except proc.ProcError as exc:
            sys.stderr.write(f"mlproject: error: the tags were created here but not pushed: {exc}\n"
                             f"push them with: git push {args.push} "
                             + " ".join(f"refs/tags/{n}" for n in made) + "\n")
            return REFUSED
        sys.stderr.write(f"pushed to {args.push}: {', '.join(made)}\n")
    return 0
