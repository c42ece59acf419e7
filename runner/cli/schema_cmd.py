"""`mlproject schema`: the JSON Schema of the format, e.g. for yaml-language-server."""
from __future__ import annotations

import argparse
import sys

from mlproject.spec.validate import schema_text


def main(args: argparse.Namespace) -> int:
    sys.stdout.write(schema_text().decode())
    return 0
