"""The environment store: each environment built once under the user cache, keyed by its recipe.

Building takes a per-key file lock, checks again (another process may have finished it), builds
in place and writes the completion marker last, atomically. An environment without a marker
(a build that was killed) or one its recipe finds unhealthy (its interpreter removed, say) is
removed and rebuilt, and the reason is said. Concurrent runs wait for one build and reuse it.
"""
from __future__ import annotations

import fcntl
import json
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlproject.runner.envs.base import Log, Recipe
from mlproject.spec.cache import cache_root, write_atomic

MARKER = ".mlproject-env.json"
USED = ".mlproject-used"


def default_root() -> Path:
    return cache_root() / "envs"


@contextmanager
def _locked(path: Path, log: Log, what: str) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another mlproject that is building {what}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Store:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or default_root()

    def prefix(self, key: str) -> Path:
        return self.root / key[:24]

    def problem(self, recipe: Recipe) -> str | None:
        """Why the recipe's environment cannot be used as it is, or None when it is ready."""
        prefix = self.prefix(recipe.key)
        if not prefix.is_dir():
            return "not built yet"
        try:
            marker = json.loads((prefix / MARKER).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return "an earlier build did not finish"
        except (OSError, ValueError):
            return "its completion marker is unreadable"
        if not isinstance(marker, dict) or marker.get("key") != recipe.key:
            return "its completion marker belongs to another environment"
        return recipe.unhealthy(prefix)

    def ensure(self, recipe: Recipe, log: Log) -> tuple[Path, bool]:
        """The ready environment's prefix, building it if needed; and whether it was built."""
        prefix = self.prefix(recipe.key)
        if self.problem(recipe) is None:
            self._touch(prefix)
            return prefix, False
        name = f"the {recipe.kind} environment {recipe.key[:12]}"
        with _locked(self.root / ".locks" / f"{recipe.key[:24]}.lock", log, name):
            reason = self.problem(recipe)
            if reason is None:  # another process built it while we waited
                self._touch(prefix)
                return prefix, False
            if prefix.exists():
                log(f"rebuilding {name}: {reason}")
                shutil.rmtree(prefix)
            else:
                log(f"building {name}")
            prefix.mkdir(parents=True)
            started = time.monotonic()
            try:
                recipe.build(prefix, log)
            except BaseException:
                shutil.rmtree(prefix, ignore_errors=True)
                raise
            marker = {"key": recipe.key, "kind": recipe.kind, "built_at": time.time(),
                      "build_seconds": round(time.monotonic() - started, 3),
                      "recipe": recipe.describe()}
            write_atomic(prefix / MARKER, json.dumps(marker, indent=2) + "\n")
            self._touch(prefix)
            log(f"built {name} in {marker['build_seconds']:.1f}s")
        return prefix, True

    @staticmethod
    def _touch(prefix: Path) -> None:
        try:
            (prefix / USED).touch()
        except OSError:
            pass  # a read-only store still serves

    def entries(self) -> list[dict[str, Any]]:
        """Every environment in the store, with its marker (None: unfinished) and last use."""
        if not self.root.is_dir():
            return []
        found = []
        for prefix in sorted(p for p in self.root.iterdir() if p.is_dir() and p.name != ".locks"):
            try:
                marker = json.loads((prefix / MARKER).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                marker = None
            used = prefix / USED
            last = used.stat().st_mtime if used.exists() else prefix.stat().st_mtime
            found.append({"path": str(prefix), "marker": marker, "last_used": last})
        return found

    def prune(self, older_than: float | None) -> list[str]:
        """Remove environments unused for `older_than` seconds (all when None), and unfinished
        ones; each under its lock, so a build or a run in progress is never pulled away."""
        removed = []
        now = time.time()
        for entry in self.entries():
            prefix = Path(entry["path"])
            if entry["marker"] is not None and older_than is not None \
                    and now - entry["last_used"] < older_than:
                continue
            with _locked(self.root / ".locks" / f"{prefix.name}.lock", lambda _: None, prefix.name):
                shutil.rmtree(prefix, ignore_errors=True)
            removed.append(str(prefix))
        return removed
