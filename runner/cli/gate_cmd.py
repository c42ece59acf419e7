"""`mlproject gate`: the gates of the MLproject file applied to the working tree's mlproject.lock
(the head) and the lock at the base revision. 0: every gate passed; 1: one failed (each said);
2: no lock at the head, an unknown base, an unreadable lock or MLproject."""
from __future__ import annotations

import argparse
import json
import os
import sys

from mlproject.runner.cli.common import EXIT_USAGE, error, load_spec
from mlproject.runner.util import exitcodes
from mlproject.spec import SpecError

FORMAT = "mlproject.gates/1"


def main(args: argparse.Namespace) -> int:
    from mlproject.runner.gitops import gates, lockfile

    spec = load_spec(args)
    if isinstance(spec, SpecError):
        return EXIT_USAGE
    try:
        head = lockfile.read(spec.root)
    except lockfile.LockError as exc:
        return error(str(exc))
    if head is None:
        return error(f"no {lockfile.LOCK_FILE} in {spec.root}: run the pipeline first "
                     f"(`mlproject run`), which writes it, then gate")
    ref = args.base
    if ref is None:
        ref, tried = gates.default_base(spec.root, os.environ)
        if ref is None:
            return error(f"no base to compare with: none of {', '.join(tried)} names a commit "
                         "here; give one with --base REF")
    try:
        base = lockfile.at_ref(spec.root, ref)
    except lockfile.LockError as exc:  # UnknownRef among them
        return error(str(exc))
    verdicts = gates.evaluate(spec, head, base, require_base=args.require_base)
    failed = gates.failed(verdicts)
    if args.json:
        sys.stdout.write(json.dumps({
            "format": FORMAT, "base": ref, "base_has_lock": base is not None,
            "passed": not failed, "verdicts": [v.to_json() for v in verdicts]},
            indent=2, sort_keys=True) + "\n")
    elif not verdicts:
        sys.stdout.write(f"no gates in {os.path.basename(spec.file)}: nothing to check\n")
    else:
        for verdict in verdicts:
            sys.stdout.write(verdict.line() + "\n")
        against = f"base {ref}" + ("" if base is not None else f", which has no {lockfile.LOCK_FILE}")
        sys.stdout.write(f"{len(verdicts) - len(failed)} passed, {len(failed)} failed "
                         f"(head: {lockfile.LOCK_FILE} in the working tree; {against})\n")
    return exitcodes.GATE_FAILED if failed else exitcodes.OK
