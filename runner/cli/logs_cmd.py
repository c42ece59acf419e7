"""`mlproject logs ID [-f]`: a run's output. From the engine while the step runs (through the
backend's `logs`, whichever backend it is), from the run's log.txt once it has ended; with -f,
as it comes until the step ends (a queued step is waited for, saying why it waits)."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import BinaryIO

from mlproject.runner.cli.runs_cmd import usable_run
from mlproject.runner.state import records
from mlproject.runner.state.status import Status
from mlproject.runner.util.console import say

POLL = 0.1  # seconds between looks at the record while the step has no output to follow
SETTLE = 60.0  # seconds to wait, once the output ended, for the record to say the step ended


def main(args: argparse.Namespace) -> int:
    from mlproject.runner.state import reconcile

    engines = reconcile.Engines()
    found = usable_run(args.project, args.run_id, engines)
    if isinstance(found, int):
        return found
    out = sys.stdout.buffer
    run_dir = records.runs_dir(args.project) / found.id
    loaded = found
    said = None
    # a step that has not started yet (not submitted, or held in the engine's queue): no output
    # anywhere; -f waits for it, saying why it waits each time the reason changes
    while loaded.record is not None and not loaded.record.status.final \
            and (loaded.record.handle is None or loaded.record.status == Status.QUEUED):
        waiting = loaded.record
        if waiting.status == Status.QUEUED:
            why = (f"run {waiting.id} ({waiting.entry_point}) is queued"
                   + (f": {waiting.reason}" if waiting.reason else ""))
        else:  # its record is written; its environment is prepared, or it is being submitted
            why = f"run {waiting.id} ({waiting.entry_point}) is starting"
        if not args.follow:
            _copy(run_dir / "log.txt", 0, out)
            say(f"{why} (no output yet; -f waits for it)")
            return 0
        if why != said:
            say(f"{why}; its output follows as it comes")
            said = why
        time.sleep(POLL)
        loaded = reconcile.refresh(args.project, records.load(run_dir), engines)
    record = loaded.record
    if record is None or record.status.final:
        _copy(run_dir / "log.txt", 0, out)
        if record is None:
            say(f"run {loaded.id} has no record (its mlproject stopped before writing one)")
        return 0
    shown = 0
    asked = engines.ask(record)
    streamed = False
    if asked is not None:
        backend, handle = asked
        try:
            for chunk in backend.logs(handle, 0, follow=args.follow):
                out.write(chunk)
                out.flush()
                shown += len(chunk)
            streamed = True
        except Exception as exc:  # an engine gone away: the run's own copy is read instead
            engines.note("logs", f"warning: the {record.backend} engine's log of run "
                                 f"{record.id} cannot be read ({type(exc).__name__}: {exc}); "
                                 "reading its log.txt")
    if not args.follow:
        if not streamed:
            _copy(run_dir / "log.txt", 0, out)
        return 0
    # until the record says the step ended: the rest of log.txt (all of it, if the engine
    # could not be read) as it comes
    deadline = time.monotonic() + SETTLE if streamed else None
    while True:
        loaded = reconcile.refresh(args.project, records.load(run_dir), engines)
        ended = loaded.record is None or loaded.record.status.final
        if not streamed or ended:
            shown = _copy(run_dir / "log.txt", shown, out)
        if ended:
            break
        if deadline is not None and time.monotonic() > deadline:
            say(f"run {record.id}: its output ended, but its record does not say the step "
                f"ended yet (`mlproject wait {record.id}`)")
            return 0
        time.sleep(POLL)
    end = loaded.record
    if end is not None:
        code = f", exit code {end.exit_code}" if end.exit_code is not None else ""
        reason = f": {end.reason}" if end.reason else ""
        say(f"run {end.id} ({end.entry_point}): {end.status}{code}{reason}")
    return 0


def _copy(path: Path, offset: int, out: BinaryIO) -> int:
    """What `path` holds after `offset`, written to `out`; the new offset."""
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            while True:
                data = log.read(65536)
                if not data:
                    break
                out.write(data)
                offset += len(data)
    except OSError:  # no log (yet): nothing to show
        return offset
    out.flush()
    return offset
