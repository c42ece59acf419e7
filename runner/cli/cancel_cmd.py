"""`mlproject cancel ID`: stop a run. The request is a file in the run directory (the cancel
marker), which whoever supervises the step honours: `run`, or the supervisor of `run --detach`,
stops the step through its backend and records it `cancelled` (130); a queued step never starts.
Where that supervisor is gone and an engine still holds the step, the engine is asked directly
(the backend's `cancel`), and the end recorded from it. A run that has already ended is said so,
exit 0: what was asked for (it does not run) holds."""
from __future__ import annotations

import argparse
import time

from mlproject.runner.cli.common import error
from mlproject.runner.cli.runs_cmd import usable_run
from mlproject.runner.state import records
from mlproject.runner.state.status import Status
from mlproject.runner.util.console import say

POLL = 0.1
# seconds to wait for the end: the engine's grace period (backends.wait.GRACE) and a margin
WAIT_FOR_END = 20.0


def main(args: argparse.Namespace) -> int:
    from mlproject.runner.backends.wait import GRACE
    from mlproject.runner.state import reconcile

    engines = reconcile.Engines()
    loaded = usable_run(args.project, args.run_id, engines)
    if isinstance(loaded, int):
        return loaded
    record = loaded.record
    if record is None:
        say(f"run {loaded.id} has already ended: crashed (its mlproject stopped before it wrote "
            "the record); nothing to cancel")
        return 0
    if record.status.final:
        code = f", exit code {record.exit_code}" if record.exit_code is not None else ""
        say(f"run {record.id} ({record.entry_point}) has already ended: {record.status}{code}; "
            "nothing to cancel")
        return 0
    run_dir = records.runs_dir(args.project) / record.id
    try:
        records.request_cancel(run_dir)
    except OSError as exc:
        return error(f"run {record.id}: the cancel request cannot be written in {run_dir}: "
                     f"{exc.strerror or exc}")
    # Nobody supervises it any more, or it is held in the engine's queue behind the steps it
    # needs (a chained pipeline: its supervisor waits for those first): the engine is told
    # now, and drops what depends on it too.
    held_in_queue = record.status == Status.QUEUED and record.handle is not None
    direct = reconcile.held(record) or held_in_queue
    if direct:
        asked = engines.ask(record)
        if asked is None:
            say(f"run {record.id}: cancel requested, but the engine cannot be asked to stop it")
            return 0
        backend, handle = asked
        try:
            backend.cancel(handle)
        except Exception as exc:
            say(f"run {record.id}: the {record.backend} engine cannot be asked to stop it "
                f"({type(exc).__name__}: {exc})")
            return 0
    who = f"the {record.backend} engine" if direct else "its supervisor"
    if held_in_queue and not reconcile.held(record):
        say(f"run {record.id} ({record.entry_point}) was held in the {record.backend} engine's "
            "queue: cancelled there, with the steps that need it (its record says so once its "
            "supervisor reaches it)")
        return 0
    if record.status == Status.QUEUED and record.handle is None:
        say(f"run {record.id} ({record.entry_point}) is queued: cancelled, it will not start "
            "(its record says so once its supervisor reaches it)")
        return 0
    if args.no_wait:
        say(f"run {record.id} ({record.entry_point}): cancel requested; {who} stops it")
        return 0
    asked_at = time.monotonic()
    forced = False
    while time.monotonic() - asked_at < WAIT_FOR_END:
        time.sleep(POLL)
        now = reconcile.refresh(args.project, records.load(run_dir), engines)
        end = now.record
        if end is None or end.status.final:
            status = end.status if end is not None else Status.CRASHED
            if status == Status.CANCELLED:
                say(f"run {record.id} ({record.entry_point}): cancelled")
            else:
                say(f"run {record.id} ({record.entry_point}) ended before it was stopped: "
                    f"{status}")
            return 0
        if direct and not forced and time.monotonic() - asked_at >= GRACE:
            asked = engines.ask(record)
            if asked is not None:
                try:
                    asked[0].cancel(asked[1], force=True)
                except Exception:  # said above, if at all: the wait below says the rest
                    pass
            forced = True
    say(f"run {record.id} ({record.entry_point}): cancel requested; it has not ended yet "
        f"(`mlproject wait {record.id}` waits for it)")
    return 0
