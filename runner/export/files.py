"""What of a run directory goes along with an exported run: its log and what the step's code
logged as artifacts. A record and its run directory are a step's to write, so nothing outside
the run directory is taken, and no link is followed (one could name any file of the machine)."""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

LOG_NAME = "log.txt"  # what the log is called among the MLflow run's artifacts
RECORD_NAME = "mlproject-run.json"


@dataclass(frozen=True)
class Upload:
    source: Path
    name: str  # '/'-separated, among the MLflow run's artifacts


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _log(run_dir: Path, log: str) -> Path | None:
    """The run's log where it is a regular file inside the run directory."""
    path = run_dir / log
    try:
        path.resolve(strict=True).relative_to(run_dir.resolve(strict=True))
    except (OSError, ValueError, RuntimeError):
        return None
    return path if _regular(path) else None


def uploads(run_dir: Path, log: str) -> list[Upload]:
    """The log (as log.txt) and every regular file under `artifacts/`, by their paths there."""
    found = []
    log_path = _log(run_dir, log)
    if log_path is not None:
        found.append(Upload(log_path, LOG_NAME))
    base = run_dir / "artifacts"
    if not base.is_dir() or base.is_symlink():
        return found
    for top, dirs, names in os.walk(base):  # a directory that is a link is listed, not entered
        dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(top, d)))
        for name in sorted(names):
            path = Path(top, name)
            if _regular(path):
                found.append(Upload(path, f"artifacts/{path.relative_to(base).as_posix()}"))
    return found
