"""Whether a step with outputs has already run: an index from fingerprint to its last good run.

`.mlproject/index/<fingerprint>.json` names the run and the hashes of its outputs; a step is up
to date when that run succeeded and the outputs still hash the same (as `dvc repro` decides).
Outputs are hashed with links recorded as links, never followed (hashing.py); an output that
cannot be hashed (a FIFO inside it, a path through a link out of the project) is a problem
with a reason, never a hang or a traceback, and never up to date.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from mlproject.runner.state import records
from mlproject.runner.state.status import Status
from mlproject.runner.util.files import write_atomic


@dataclass(frozen=True)
class Survey:
    hashes: dict[str, dict[str, Any] | None]  # None: absent, or unusable (see problems)
    problems: dict[str, str] = field(default_factory=dict)  # output -> why it is unusable

    def reason(self) -> str | None:
        """The problems in one line, for a run record's `reason`."""
        return "; ".join(self.problems.values()) or None


def escapes(root: str, output: str) -> str | None:
    """Why `output` would be written outside the project, or None. Validation refuses paths
    that leave it in writing (`../x`); only here can a link on the way be seen."""
    parts = [p for p in output.split("/") if p not in ("", ".")]
    if os.path.isabs(output) or ".." in parts:
        return f"output {output!r} is not a path inside the project"
    real_root = os.path.realpath(root)
    for i in range(1, len(parts) + 1):  # a link that stays inside is hashed as a link
        here = os.path.join(root, *parts[:i])
        if os.path.islink(here):
            target = os.path.realpath(here)
            if os.path.commonpath([real_root, target]) != real_root:
                from mlproject.runner.util.hashing import shown

                how = "is" if i == len(parts) else "goes through"
                return (f"output {output!r} {how} the link {'/'.join(parts[:i])!r} -> "
                        f"{shown(os.readlink(here))!r}, which leaves the project: outputs are "
                        "written inside it")
    return None


def survey(root: str, outputs: tuple[str, ...]) -> Survey:
    """Each declared output's hash, and why any that exists cannot be used. The same hashing
    and stat cache as data verification: outputs unchanged since the last look cost stats."""
    if not outputs:
        return Survey({})
    from mlproject.runner.data.verify import StatCache, hash_path
    from mlproject.runner.util.hashing import Unhashable, shown

    hashes: dict[str, dict[str, Any] | None] = {}
    problems: dict[str, str] = {}
    for output in outputs:
        hashes[output] = None
        why = escapes(root, output)
        if why:
            problems[output] = why
            continue
        cache = StatCache(root, output)
        try:
            found = hash_path(os.path.join(root, output), "md5", cache, links="record",
                              label=output)
        except FileNotFoundError:
            continue
        except Unhashable as exc:
            problems[output] = f"output {output!r}: {exc}"
            continue
        except OSError as exc:  # vanished or unreadable halfway: say so, never a traceback
            problems[output] = f"output {output!r}: cannot read it: {shown(str(exc))}"
            continue
        hashes[output] = found.to_json()
        cache.save()
    return Survey(hashes, problems)


def hash_outputs(root: str, outputs: tuple[str, ...]) -> dict[str, dict[str, Any] | None]:
    """Each declared output's DVC-style hash, or None where it does not exist or cannot be
    hashed; why it cannot is said on stderr (`survey` returns it, for a run record)."""
    found = survey(root, outputs)
    if found.problems:
        from mlproject.runner.util.console import say

        for why in found.problems.values():
            say(why)
    return found.hashes


def _entry(root: str, fingerprint: str) -> Any:
    return records.state_dir(root) / "index" / f"{fingerprint}.json"


def earlier_run(root: str, fingerprint: str, outputs: tuple[str, ...]) -> str | None:
    """The id of the run that makes this step up to date, if there is one."""
    try:
        entry = json.loads(_entry(root, fingerprint).read_text(encoding="utf-8"))
        run_id = entry["run"]
        recorded = entry["outputs"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None
    if not isinstance(run_id, str) or not isinstance(recorded, dict):
        return None
    run = records.record_of(root, run_id)
    if not run or run.status is not Status.SUCCEEDED:
        return None
    if sorted(recorded) != sorted(outputs):
        return None
    now = survey(root, outputs)
    if now.problems or recorded != now.hashes:
        return None
    return run_id


def remember(root: str, fingerprint: str, run_id: str, outputs: dict[str, Any]) -> None:
    write_atomic(_entry(root, fingerprint), json.dumps({"run": run_id, "outputs": outputs}))
