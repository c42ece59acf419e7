"""`mlproject runs` lists the project's runs; `mlproject runs show ID` shows one.

Records are read back checked against the published schema (records.load): one that cannot be
used is listed as `corrupt` (a pseudo-status of these lists, never a record's) with the reason,
and never hides the others. A run an engine holds whose supervising mlproject is gone is
brought up to date from the engine first (state/reconcile.py); `find_run` and `usable_run` are
how `logs`, `cancel` and `wait` find the run an id names."""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlproject.runner.cli.common import error
from mlproject.runner.state import index, records
from mlproject.runner.state.status import Status

if TYPE_CHECKING:
    from mlproject.runner.state import reconcile

_SHOWN_CANDIDATES = 10


def _metrics_text(metrics: Mapping[str, float] | None, limit: int = 3) -> str:
    if not metrics:
        return ""
    items = list(metrics.items())
    text = " ".join([f"{k}={v:.4g}" for k, v in items[:limit]])
    return text + " ..." if len(items) > limit else text


_CONTROLS = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)]
             if c not in (0x09, 0x0A)}
_SHOWN = {**_CONTROLS, 0x0A: "\\n"}


def _printable(text: str) -> str:
    """Text from a record, safe for a terminal: a control character (an escape sequence that
    would clear the screen or retitle the window, a carriage return that hides a line) is shown
    as \\xNN, and a newline only where mlproject puts one."""
    if text.isascii() and text.isprintable():  # nearly every cell: 10,000 runs are 50,000
        return text
    return text.translate(_SHOWN)


def _not_a_project(path: str) -> str | None:
    """Why `path` is no project whose runs can be listed, or None."""
    if not os.path.exists(path):
        return f"--project {path}: no such directory"
    if not os.path.isdir(path):
        return f"--project {path}: not a directory (name the project directory)"
    try:
        names = os.listdir(path)
    except OSError as exc:
        return f"--project {path}: cannot list it: {exc.strerror}"
    has_spec = any(n.lower() == "mlproject" and os.path.isfile(os.path.join(path, n))
                   for n in names)
    if not has_spec and not os.path.isdir(records.runs_dir(path)):
        return f"--project {path}: not a project (no MLproject file and no runs recorded)"
    return None


def _rows(project: str) -> list[index.Row]:
    """Every run's row (the index's), those an engine may hold brought up to date first."""
    from mlproject.runner.state import reconcile

    found = index.rows(project)
    engines: reconcile.Engines | None = None
    for i, row in enumerate(found):
        if row["status"] not in (Status.QUEUED, Status.RUNNING):
            continue
        engines = engines or reconcile.Engines()
        run_dir = records.runs_dir(project) / row["id"]
        refreshed = reconcile.refresh(project, records.load(run_dir), engines)
        found[i] = index.row_of(refreshed)
        if found[i]["status"] in (Status.QUEUED, Status.RUNNING) and records.cancel_requested(
                run_dir):
            found[i]["cancel_requested"] = True
    return found


def _list(args: argparse.Namespace) -> int:
    import gc

    # 10,000 runs are ~200,000 small objects made and dropped at once: the collector's passes
    # over them cost ~50 ms and free nothing (nothing here makes cycles)
    gc.disable()
    try:
        return _listed(args)
    finally:
        gc.enable()


def _listed(args: argparse.Namespace) -> int:
    from mlproject.runner.state import query

    try:
        found = query.select(_rows(args.project), args.filter, args.sort, args.limit)
    except query.QueryError as exc:
        return error(str(exc))
    if args.json:
        sys.stdout.write(json.dumps([{**index.shown(run), **(
            {"cancel_requested": True} if run.get("cancel_requested") else {})}
            for run in found], indent=2) + "\n")
        return 0
    if not found:
        sys.stderr.write("mlproject: no runs recorded in this project yet\n" if args.filter is None
                         else "mlproject: no run meets the filter\n")
        return 0
    columns: list[list[str]] = [["ID"], ["ENTRY POINT"], ["STATUS"], ["DURATION"]]
    last = ["METRICS"]
    for run in found:
        duration = run["duration"]
        columns[0].append(_printable(run["id"]))
        columns[1].append(_printable(str(run["entry_point"] or "-")))
        columns[2].append(run["status"])
        columns[3].append(f"{duration:.2f}s" if isinstance(duration, (int, float)) else "-")
        last.append(_printable(run.get("problem") or _detail(run)))
    formats = [f"{{:<{max(map(len, column))}}}  " for column in columns]
    line = "".join(formats) + "{}\n"
    sys.stdout.write("".join(line.format(*cells) for cells in zip(*columns, last, strict=True)))
    corrupt = sum(run["status"] == records.CORRUPT for run in found)
    if corrupt:
        sys.stderr.write(f"mlproject: {corrupt} run record{'s' if corrupt > 1 else ''} cannot be "
                         "read (status corrupt); `mlproject runs show ID` says why\n")
    return 0


def find_run(project: str, run_id: str) -> records.Loaded | int:
    """The run `run_id` (an id, or a unique prefix of one) names, or the exit code after saying
    why there is none. A run whose record cannot be used is returned: its `problem` says why."""
    found = records.lookup(project, run_id)
    if found.problem:
        return error(f"{run_id!r}: {found.problem}")
    if found.found is None:
        if not found.candidates:
            return error(f"no run {run_id!r} in {project}")
        shown = ", ".join(found.candidates[:_SHOWN_CANDIDATES])
        more = len(found.candidates) - _SHOWN_CANDIDATES
        return error(f"run id prefix {run_id!r} is ambiguous: {len(found.candidates)} runs "
                     f"start with it: {shown}{f' and {more} more' if more > 0 else ''}")
    return found.found


def usable_run(project: str, run_id: str,
               engines: reconcile.Engines | None = None) -> records.Loaded | int:
    """As `find_run`, and a record that cannot be used is an error too (exit code 2), the
    record brought up to date from the engine that holds its step (reconcile)."""
    from mlproject.runner.state import reconcile

    why = _not_a_project(project)
    if why:
        return error(why)
    loaded = find_run(project, run_id)
    if isinstance(loaded, int):
        return loaded
    if loaded.problem:
        return error(f"run {loaded.id}: {loaded.problem} (in "
                     f"{records.runs_dir(project) / loaded.id})")
    return reconcile.refresh(project, loaded, engines)


def _detail(run: dict[str, Any]) -> str:
    """The last column of `runs`: why a run waits (or that it is being cancelled), else its
    metrics."""
    if run.get("cancel_requested"):
        return "cancel requested"
    if run["status"] == Status.QUEUED and run.get("reason"):
        return str(run["reason"])
    return _metrics_text(run["metrics"])


def _show(args: argparse.Namespace) -> int:
    loaded_or_code = usable_run(args.project, args.run_id)
    if isinstance(loaded_or_code, int):
        return loaded_or_code
    loaded = loaded_or_code
    if args.json:
        sys.stdout.write(json.dumps(loaded.row(), indent=2) + "\n")
        return 0
    run_dir = records.runs_dir(args.project) / loaded.id
    record = loaded.record
    if record is None:
        sys.stdout.write(f"run {loaded.id}: crashed (mlproject stopped before it wrote the "
                         f"record)\n  log: {run_dir / 'log.txt'}\n")
        return 0
    lines = [f"run {record.id}: {record.entry_point} {record.status}"]
    if not record.status.final and records.cancel_requested(run_dir):
        lines[0] += " (cancel requested)"
    for key, value in (("started_at", record.started_at), ("ended_at", record.ended_at),
                       ("duration", record.duration), ("exit_code", record.exit_code),
                       ("reason", record.reason), ("command", record.command),
                       ("fingerprint", record.fingerprint),
                       ("metrics_error", record.metrics_error)):
        if value is not None:
            lines.append(f"  {key}: {value}")
    lines += [f"  parameter {name}: {value}" for name, value in record.parameters.items()]
    lines += [f"  metric {name}: {value}" for name, value in record.metrics.items()]
    lines += [f"  output {name}: {value.get('md5') if value is not None else None}"
              for name, value in record.outputs.items()]
    code = record.code
    lines.append(f"  code: {code.get('kind')} {code.get('commit') or ''} "
                 f"{'(uncommitted changes)' if code.get('dirty') else ''}".rstrip())
    lines.append(f"  backend: {record.backend}"
                 + (f" (engine id {record.handle.get('id')})" if record.handle else ""))
    lines.append(f"  log: {run_dir / 'log.txt'}")
    sys.stdout.write("\n".join(_printable(line) for line in lines) + "\n")
    return 0


def _short_hash(text: str) -> str:
    """A commit, digest or key, as Git shows one in a table: its first 12 digits (--json has
    them whole)."""
    if len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text):
        return text[:12]
    return text


def _compare(args: argparse.Namespace) -> int:
    from mlproject.runner.state import compare

    if len(args.run_ids) < 2:
        return error("runs compare takes at least two runs")
    found = []
    for run_id in args.run_ids:
        loaded = usable_run(args.project, run_id)
        if isinstance(loaded, int):
            return loaded
        assert loaded.record is not None  # usable_run refuses a run without one
        found.append(loaded.record)
    ids = [r.id for r in found]
    if len(set(ids)) < len(ids):
        return error("runs compare: a run is named twice")
    lines = compare.lines(found)
    if args.json:
        sys.stdout.write(json.dumps({"runs": ids, "rows": [line.to_json() for line in lines]},
                                    indent=2) + "\n")
        return 0
    shown = [line for line in lines if args.all or line.differs or line.section == "metric"]
    table = [("", "", *ids)] + [("*" if line.differs else "", f"{line.section} {line.name}",
                                 *map(_short_hash, line.values)) for line in shown]
    table = [tuple(_printable(cell) for cell in row) for row in table]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    sys.stdout.write("".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
                             .rstrip() + "\n" for row in table))
    same = len(lines) - sum(line.differs for line in lines)
    if not args.all and same:
        sys.stderr.write(f"mlproject: {same} rows are the same in every run (--all shows "
                         "them; metrics are always shown)\n")
    return 0


def main(args: argparse.Namespace) -> int:
    why = _not_a_project(args.project)
    if why:
        return error(why)
    if args.runs_verb == "export":
        from mlproject.runner.export import command

        return command.main(args)
    if args.runs_verb == "compare":
        return _compare(args)
    return _show(args) if args.runs_verb == "show" else _list(args)
