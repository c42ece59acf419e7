"""`mlproject data status` and `mlproject data pull`: the pinned inputs and the workspace."""
from __future__ import annotations

import argparse
import json
import sys

from mlproject.runner.cli.common import EXIT_USAGE, error, load_spec
from mlproject.runner.util import exitcodes, extras
from mlproject.runner.util.console import say
from mlproject.spec import SpecError


def main(args: argparse.Namespace) -> int:
    from mlproject.runner import data
    from mlproject.runner.data.pull import pull

    spec = load_spec(args)
    if isinstance(spec, SpecError):
        return EXIT_USAGE
    if args.data_verb == "status":
        rows = data.data_status(spec.root, spec.data, say)
        if args.json:
            sys.stdout.write(json.dumps(data.rows_json(rows), indent=2) + "\n")
        else:
            sys.stdout.write(data.render(rows))
        return 0 if all(row.ok for row in rows) else exitcodes.DIFFERS
    unknown = [n for n in args.names if n not in spec.data]
    if unknown:
        return error(f"no data input {', '.join(map(repr, unknown))} (declared: "
                     f"{', '.join(spec.data) or 'none'})")
    failed = 0
    unequipped = False  # an extra is missing: install it, nothing was attempted
    for name in args.names or list(spec.data):
        try:
            pin = data.pin_input(spec.root, spec.data[name], say)
            status = pull(spec.root, pin, force=args.force, log=say)
        except data.DataError as exc:
            error(str(exc))
            failed += 1
            unequipped = unequipped or isinstance(exc, extras.MissingExtra)
            continue
        print(f"{name}: {status.path} {status.state} ({pin.md5})")
    if unequipped:
        return exitcodes.USAGE
    return exitcodes.INCOMPLETE if failed else 0
