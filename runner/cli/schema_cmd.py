"""`mlproject schema`: the JSON Schema of the format, e.g. for yaml-language-server; with
`--record`, the JSON Schema of a run record (run.json, `runs show --json`)."""
from __future__ import annotations

import argparse
import sys


def main(args: argparse.Namespace) -> int:
    if getattr(args, "record", False):
        from mlproject.runner.state.record import schema_text as record_schema

        sys.stdout.write(record_schema().decode())
        return 0
    from mlproject.spec.validate import schema_text

    sys.stdout.write(schema_text().decode())
    return 0
