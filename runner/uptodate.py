"""Whether a step with outputs has already run: an index from fingerprint to its last good run.

`.mlproject/index/<fingerprint>.json` names the run and the hashes of its outputs; a step is up
to date when that run succeeded and the outputs still hash the same (as `dvc repro` decides).
"""
from __future__ import annotations

import json
import os
from typing import Any

from mlproject.runner import records
from mlproject.spec.cache import write_atomic


def hash_outputs(root: str, outputs: tuple[str, ...]) -> dict[str, dict[str, Any] | None]:
    """Each declared output's DVC-style hash, or None where it does not exist. The same hashing
    and stat cache as data verification: outputs unchanged since the last look cost stats."""
    if not outputs:
        return {}
    from mlproject.runner.data.verify import StatCache, hash_path

    found: dict[str, dict[str, Any] | None] = {}
    for output in outputs:
        cache = StatCache(root, output)
        try:
            found[output] = hash_path(os.path.join(root, output), "md5", cache).to_json()
        except OSError:
            found[output] = None
        cache.save()
    return found


def _entry(root: str, fingerprint: str) -> Any:
    return records.state_dir(root) / "index" / f"{fingerprint}.json"


def find(root: str, fingerprint: str, outputs: tuple[str, ...]) -> str | None:
    """The id of the run that makes this step up to date, if there is one."""
    try:
        entry = json.loads(_entry(root, fingerprint).read_text(encoding="utf-8"))
        run_id = entry["run"]
        recorded = entry["outputs"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    run = records.find(root, run_id)
    if not run or run.get("status") != "succeeded":
        return None
    if sorted(recorded) != sorted(outputs) or recorded != hash_outputs(root, outputs):
        return None
    return str(run_id)


def remember(root: str, fingerprint: str, run_id: str, outputs: dict[str, Any]) -> None:
    write_atomic(_entry(root, fingerprint), json.dumps({"run": run_id, "outputs": outputs}))
