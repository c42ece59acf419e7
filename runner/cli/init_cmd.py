"""`mlproject init DIR`: a new project from the packaged template; never overwrites a file."""
from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from mlproject.runner.cli.common import error

_SKIP = {"__init__.py", "__pycache__"}


def main(args: argparse.Namespace) -> int:
    source = resources.files("mlproject.templates") / "project"
    target = Path(args.directory)
    names = [item.name for item in source.iterdir() if item.name not in _SKIP]
    # A file already there with the template's content is no clash: init can be run again.
    clashes = [name for name in names if (target / name).exists()
               and (not (target / name).is_file()
                    or (target / name).read_bytes() != (source / name).read_bytes())]
    if clashes:
        return error(f"{target} already has {', '.join(sorted(clashes))}: nothing was written")
    target.mkdir(parents=True, exist_ok=True)
    for name in sorted(names):
        if not (target / name).exists():
            (target / name).write_bytes((source / name).read_bytes())
    sys.stderr.write(f"mlproject: created {target} ({', '.join(sorted(names))}); "
                     f"run it with: mlproject run {target}\n")
    return 0
