"""`mlproject report [PATH] [--base REF] [--head REF] [--format markdown|json] [--plots DIR]
[-o FILE]`: the head lock (the working tree's, or the one at --head) against the base's (read
with `git show`, no checkout), as a pull-request comment or as JSON."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mlproject.runner.util import exitcodes

if TYPE_CHECKING:
    from mlproject.runner.gitops.plots import Series
    from mlproject.runner.gitops.report import Report
    from mlproject.spec import Spec

MAX_SERIES_BYTES = 16 << 20


def main(args: argparse.Namespace) -> int:
    if getattr(args, "html", None) is not None:  # the runs as a page, not the pull request's
        from mlproject.runner.htmlreport import command

        return command.main(args)
    from mlproject.runner.gitops import gates, lockfile, report

    if args.plots is not None:
        from mlproject.runner.gitops.plots import PlotError, check

        try:
            check()  # before any work: the whole verb needs it
        except PlotError as exc:
            return error(str(exc))
    spec = _spec(args)
    if spec is None:
        return exitcodes.USAGE
    root = spec.root
    note = None
    base_ref = args.base
    if base_ref is None:
        base_ref, tried = gates.default_base(root, os.environ)
        if base_ref is None:
            note = (f"no base to compare with (tried {', '.join(tried)}): name one with "
                    "--base REF")
    try:
        if args.head is not None:
            head = lockfile.at_ref(root, args.head)
            if head is None:
                return error(f"there is no {lockfile.LOCK_FILE} at {args.head}: nothing to "
                             "report (run the pipeline and commit the lock there)")
        else:
            head = lockfile.read(root)
            if head is None:
                return error(f"there is no {lockfile.LOCK_FILE} in {root}: run the pipeline "
                             "(`mlproject run`) to write it, then report")
        base = lockfile.at_ref(root, base_ref) if base_ref is not None else None
    except lockfile.LockError as exc:
        return error(str(exc))
    if base is None and base_ref is not None:
        note = f"there is no {lockfile.LOCK_FILE} at {base_ref} (a first pull request?)"
    verdicts = gates.evaluate(spec, head, base, require_base=False)
    made = report.build(base, head, verdicts, report.runs_by_fingerprint(root),
                        base_ref=base_ref, head_ref=args.head, note=note)
    if args.format == "json":
        text = json.dumps(report.to_json(made), indent=2, sort_keys=True) + "\n"
    else:
        text = report.markdown(made)
    if args.plots is not None:
        code = _plots(args, spec, made, base_ref)
        if code:
            return code
    if args.output is None:
        sys.stdout.write(text)
        return 0
    from mlproject.runner.util.files import write_atomic

    try:
        write_atomic(Path(args.output), text)
    except OSError as exc:
        return error(f"-o {args.output}: cannot write it ({exc.strerror or exc})")
    return 0


def error(message: str) -> int:
    sys.stderr.write(f"mlproject: error: {message}\n")
    return exitcodes.USAGE


def _spec(args: argparse.Namespace) -> Spec | None:
    """The spec, its warnings printed; None after printing why there is none."""
    from mlproject.runner.cli.common import load_spec
    from mlproject.spec import SpecError

    spec = load_spec(args)
    return None if isinstance(spec, SpecError) else spec


def _plots(args: argparse.Namespace, spec: Spec, made: Report, base_ref: str | None) -> int:
    from mlproject.runner.gitops import plots

    series: dict[str, tuple[Series | None, Series | None]] = {}
    for name, entry in spec.entry_points.items():
        if entry.series:
            base = _series(spec.root, entry.series, base_ref, "base") if made.base_found else None
            head = _series(spec.root, entry.series, args.head, "head")
            series[name] = (base, head)
    try:
        written = plots.write(args.plots, made, series)
    except plots.PlotError as exc:
        return error(str(exc))
    for path in written:
        sys.stderr.write(f"wrote {path}\n")
    return 0


def _series(root: str, path: str, ref: str | None, side: str) -> Series | None:
    """A series file at `ref` (`git show`), or in the working tree when `ref` is None; None,
    with a warning, when it is not there or holds no series."""
    from mlproject.runner.gitops.plots import PlotError, parse_series
    from mlproject.runner.util import proc

    where = f"{path} at {ref}" if ref else path
    try:
        if ref is None:
            with open(os.path.join(root, path), "rb") as handle:
                raw = handle.read(MAX_SERIES_BYTES)
        else:
            shown = proc.run(["git", "show", f"{ref}:./{path}"], cwd=root, check=False)
            if shown.code != 0:
                _warn(f"the {side} has no series {where} in Git: its curves are left out")
                return None
            raw = shown.stdout[:MAX_SERIES_BYTES]
        return parse_series(raw.decode("utf-8", "replace"), where)
    except OSError as exc:
        _warn(f"the {side} series {where} cannot be read ({exc.strerror or exc}): its curves are "
              "left out")
    except (PlotError, proc.ProcError) as exc:
        _warn(f"{exc}: the {side} curves are left out")
    return None


def _warn(message: str) -> None:
    sys.stderr.write(f"mlproject: warning: {message}\n")
