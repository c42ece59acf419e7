"""`mlproject validate`: 0 for a valid file, 2 with every problem otherwise."""
from __future__ import annotations

import argparse
import json
import sys

from mlproject.runner.cli.common import EXIT_USAGE, load_spec
from mlproject.spec import SpecError


def main(args: argparse.Namespace) -> int:
    result = load_spec(args)
    problems = result.problems if isinstance(result, SpecError) else list(result.warnings)
    if args.json:
        sys.stdout.write(json.dumps([
            {"file": p.file, "line": p.line, "col": p.col, "path": list(p.path),
             "message": p.message, "severity": p.severity} for p in problems], indent=2) + "\n")
    if isinstance(result, SpecError):
        return EXIT_USAGE
    if not args.json:
        entries = ", ".join(result.entry_points)
        sys.stdout.write(f"{result.file}: valid ({len(result.entry_points)} entry points: {entries})\n")
    return 0
