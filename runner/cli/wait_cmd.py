"""`mlproject wait ID`: until the run ends, then exit with its exit code as recorded (0, the
step's own code, 124 timeout, 130 cancelled or interrupted, 137 out of memory). A run that
crashed (the mlproject that supervised it ended without recording the end) exits 5, saying so."""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mlproject.runner.cli.runs_cmd import usable_run
from mlproject.runner.state import records
from mlproject.runner.state.status import Status
from mlproject.runner.util.console import say
from mlproject.runner.util.exitcodes import CRASHED as EXIT_CRASHED
from mlproject.runner.util.exitcodes import STEP_FAILED as EXIT_STEP_FAILED
from mlproject.runner.util.exitcodes import USAGE as EXIT_USAGE

if TYPE_CHECKING:
    from mlproject.runner.state.record import RunRecord

FIRST, MOST = 0.05, 0.5  # seconds between looks at the record: quick at first, then calmer


def main(args: argparse.Namespace) -> int:
    from mlproject.runner.state import reconcile

    engines = reconcile.Engines()
    loaded = usable_run(args.project, args.run_id, engines)
    if isinstance(loaded, int):
        return loaded
    run_dir = records.runs_dir(args.project) / loaded.id
    pause = FIRST
    said = None
    while True:
        record = loaded.record
        if record is None:
            if loaded.problem:
                say(f"error: run {loaded.id}: {loaded.problem}")
                return EXIT_USAGE
            say(f"run {loaded.id} crashed: its mlproject stopped before it wrote the record")
            return EXIT_CRASHED
        if record.status.final:
            return _ended(record, run_dir)
        state = f"{record.status}" + (f": {record.reason}" if record.reason else "")
        if state != said:
            say(f"waiting for run {record.id} ({record.entry_point}): {state}")
            said = state
        time.sleep(pause)
        pause = min(pause * 2, MOST)
        loaded = reconcile.refresh(args.project, records.load(run_dir), engines)


def _ended(record: RunRecord, run_dir: Path) -> int:
    if record.status == Status.CRASHED:
        host = record.host
        say(f"run {record.id} ({record.entry_point}) crashed: the mlproject that supervised it "
            f"(process {host.pid} on {host.hostname}) ended without recording how the step "
            f"ended; its output so far: {run_dir / 'log.txt'}")
        return EXIT_CRASHED
    code = record.exit_code if record.exit_code is not None else (
        0 if record.status == Status.SUCCEEDED else EXIT_STEP_FAILED)
    reason = f": {record.reason}" if record.reason else ""
    say(f"run {record.id} ({record.entry_point}): {record.status}, exit code {code}{reason}")
    return code
