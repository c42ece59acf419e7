"""`mlproject runs export --mlflow URI [IDS...]`: which runs, exported, and what is said of each.

Exit codes: 0 every run named (or, with none named, every run that has ended) is in MLflow, now
or from an earlier export; 1 some could not be exported (each line says why); 2 a usage error:
an id that names no run, mlflow not installed, a server that does not answer, an experiment that
cannot be used. Results go to stdout (a line a run and a summary, or `--json`), notes to stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlproject.runner.cli.common import error
from mlproject.runner.state import records
from mlproject.runner.util import exitcodes
from mlproject.runner.util.console import say

if TYPE_CHECKING:
    from mlproject.runner.export.mlflow import Outcome, Tracking

# Some runs are not in MLflow (each line says why)
NOT_ALL_EXPORTED = exitcodes.INCOMPLETE  # as `lock` and `data pull`: the rest was done


@dataclass(frozen=True)
class Chosen:
    """A run to export, or why it cannot be (`skipped`)."""
    loaded: records.Loaded
    skipped: str | None = None


def _named(project: str, ids: list[str]) -> list[Chosen] | int:
    from mlproject.runner.cli.runs_cmd import usable_run

    chosen: dict[str, Chosen] = {}
    for run_id in ids:
        found = usable_run(project, run_id)
        if isinstance(found, int):
            return found
        why = ("mlproject stopped before it wrote the record" if found.record is None else
               None if found.record.status.final else f"it is still {found.record.status.value}")
        chosen.setdefault(found.id, Chosen(found, why))
    return list(chosen.values())


def _ended(project: str) -> list[Chosen]:
    from mlproject.runner.state import reconcile

    loaded = reconcile.refresh_all(project, records.loaded_runs(project))
    ended = [Chosen(r) for r in loaded if r.record is not None and r.record.status.final]
    left = len(loaded) - len(ended)
    if left:
        say(f"{left} run{'s' if left > 1 else ''} left out (still running, or without a usable "
            "record: `mlproject runs` lists them)")
    return ended


def _experiment_name(args: argparse.Namespace, loaded: records.Loaded) -> str:
    if args.experiment_name is not None:
        return str(args.experiment_name)
    if loaded.record is not None and loaded.record.name:
        return loaded.record.name
    return os.path.basename(os.path.abspath(str(args.project)))


def _export(tracking: Tracking, experiment_id: str, loaded: records.Loaded,
            project: str) -> Outcome:
    from mlproject.runner.export.files import uploads
    from mlproject.runner.export.mapping import Unmappable, mapped
    from mlproject.runner.export.mlflow import Outcome

    record = loaded.record
    assert record is not None  # chosen runs have one
    try:
        run = mapped(record, tracking.limits)
    except Unmappable as exc:
        return Outcome("failed", reason=str(exc))
    run_dir = records.runs_dir(project) / loaded.id
    return tracking.export(experiment_id, run, uploads(run_dir, record.log), record.to_json())


def _line(row: dict[str, Any]) -> str:
    status, mlflow_id, why = row["status"], row["mlflow_run_id"], row["reason"]
    said = {"exported": f"exported as MLflow run {mlflow_id} (experiment {row['experiment']!r})",
            "already_exported": f"already exported (MLflow run {mlflow_id})",
            "skipped": f"skipped: {why}", "failed": f"could not be exported: {why}"}[status]
    return f"{row['id']}: {said}"


def main(args: argparse.Namespace) -> int:
    if args.experiment_name is not None and not args.experiment_name.strip():
        return error("--experiment-name: an MLflow experiment needs a name that is not empty")
    chosen = _named(args.project, args.run_ids) if args.run_ids else _ended(args.project)
    if isinstance(chosen, int):
        return chosen
    if not chosen:
        sys.stdout.write("[]\n" if args.json else "no run has ended yet: nothing to export\n")
        return exitcodes.OK
    from mlproject.runner.export.mlflow import Outcome, Unavailable, connect

    try:
        tracking = connect(args.mlflow)
        experiments = {name: tracking.experiment(name) for name in dict.fromkeys(
            _experiment_name(args, c.loaded) for c in chosen if c.skipped is None)}
    except Unavailable as exc:
        return error(str(exc))
    rows: list[dict[str, Any]] = []
    gone = False
    for choice in chosen:
        name = _experiment_name(args, choice.loaded)
        if choice.skipped is not None:
            outcome = Outcome("skipped", reason=choice.skipped)
        elif gone:
            outcome = Outcome("failed", reason=f"not tried: {args.mlflow} stopped answering")
        else:
            outcome = _export(tracking, experiments[name], choice.loaded, args.project)
            gone = outcome.status == "failed" and not tracking.reachable()
        rows.append({"id": choice.loaded.id, "mlflow_run_id": outcome.mlflow_run_id,
                     "status": outcome.status, "experiment": name, "reason": outcome.reason})
        if not args.json:
            sys.stdout.write(_line(rows[-1]) + "\n")
            sys.stdout.flush()
    counts = {s: sum(r["status"] == s for r in rows)
              for s in ("exported", "already_exported", "skipped", "failed")}
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        sys.stdout.write(f"{counts['exported']} exported, {counts['already_exported']} already "
                         f"exported, {counts['skipped'] + counts['failed']} not exported "
                         f"(to {args.mlflow})\n")
    return exitcodes.OK if counts["skipped"] + counts["failed"] == 0 else NOT_ALL_EXPORTED
