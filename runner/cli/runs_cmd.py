"""`mlproject runs` lists the project's runs; `mlproject runs show ID` shows one."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mlproject.runner import records
from mlproject.runner.cli.common import error


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    return {key: record.get(key) for key in (
        "id", "entry_point", "status", "started_at", "duration", "exit_code", "metrics",
        "fingerprint")}


def _metrics_text(metrics: dict[str, Any] | None, limit: int = 3) -> str:
    items = list((metrics or {}).items())
    text = " ".join(f"{k}={v:.4g}" for k, v in items[:limit])
    return text + (" ..." if len(items) > limit else "")


def _list(args: argparse.Namespace) -> int:
    found = [_summary(r) for r in records.list_runs(args.project)]
    if args.json:
        sys.stdout.write(json.dumps(found, indent=2) + "\n")
        return 0
    if not found:
        sys.stderr.write("mlproject: no runs recorded in this project yet\n")
        return 0
    rows = [("ID", "ENTRY POINT", "STATUS", "DURATION", "METRICS")]
    for run in found:
        duration = f"{run['duration']:.2f}s" if isinstance(run["duration"], (int, float)) else "-"
        rows.append((run["id"], str(run["entry_point"] or "-"), run["status"], duration,
                     _metrics_text(run["metrics"])))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        sys.stdout.write("  ".join([*cells, row[4]]) + "\n")
    return 0


def _show(args: argparse.Namespace) -> int:
    record = records.find(args.project, args.run_id)
    if record is None:
        return error(f"no run {args.run_id!r} in {args.project} (or the prefix is ambiguous)")
    if args.json:
        sys.stdout.write(json.dumps(record, indent=2) + "\n")
        return 0
    run_dir = records.runs_dir(args.project) / str(record["id"])
    lines = [f"run {record['id']}: {record['entry_point']} {record['status']}"]
    for key in ("started_at", "ended_at", "duration", "exit_code", "reason", "command",
                "fingerprint"):
        if record.get(key) is not None:
            lines.append(f"  {key}: {record[key]}")
    for key in ("parameters", "metrics", "outputs"):
        for name, value in (record.get(key) or {}).items():
            shown = value.get("md5") if isinstance(value, dict) else value
            lines.append(f"  {key[:-1] if key != 'metrics' else 'metric'} {name}: {shown}")
    code = record.get("code") or {}
    lines.append(f"  code: {code.get('kind')} {code.get('commit') or ''} "
                 f"{'(uncommitted changes)' if code.get('dirty') else ''}".rstrip())
    lines.append(f"  log: {run_dir / 'log.txt'}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def main(args: argparse.Namespace) -> int:
    return _show(args) if args.runs_verb == "show" else _list(args)
