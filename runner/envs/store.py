"""The environment store: each environment built once under the user cache, keyed by its recipe.

Building takes a per-key file lock, checks again (another process may have finished it), builds
in place and writes the completion marker last, atomically. An environment without a marker
(a build that was killed) or one its recipe finds unhealthy (its interpreter removed, say) is
removed and rebuilt, and the reason is said. Concurrent runs wait for one build and reuse it.

A run holds its environment (a shared lock on `.locks/KEY.use`) from before the check until its
step ends; `prune` takes that lock exclusively, without waiting, and skips what it cannot take.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from pathlib import Path
from typing import IO, Any

from mlproject.runner.envs.base import EnvError, Log, Recipe
from mlproject.runner.util.files import cache_root, locked, write_atomic

MARKER = ".mlproject-env.json"
USED = ".mlproject-used"


def default_root() -> Path:
    return cache_root() / "envs"


class Hold:
    """A shared lock on one environment while a step uses it: `env prune` leaves it alone.
    Released by `release()` (or the end of a `with` block); the kernel drops it when the
    process dies, so a killed run holds nothing."""

    def __init__(self, handle: IO[str] | None) -> None:
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the file drops the lock
            self._handle = None

    def inherit(self) -> None:
        """Keep the hold in a program this process execs: it lasts as long as that program."""
        if self._handle is not None:
            os.set_inheritable(self._handle.fileno(), True)

    def __enter__(self) -> Hold:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


class EnvStore:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or default_root()

    def _lock_file(self, name: str, suffix: str) -> Path:
        return self.root / ".locks" / f"{name[:24]}{suffix}"

    def hold(self, key: str, log: Log) -> Hold:
        """Hold the environment of `key` (built or not yet) until released: taken before it is
        checked or built, so that no prune can remove it between the check and the step."""
        path = self._lock_file(key, ".use")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(path, "a+")  # noqa: SIM115 (kept open: the lock lives as long as it)
        except OSError:
            return Hold(None)  # a read-only store: nothing can prune it either
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for `mlproject env prune`, which is removing the environment {key[:12]}")
            fcntl.flock(handle, fcntl.LOCK_SH)
        return Hold(handle)

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
        except (OSError, ValueError, RecursionError):
            return "its completion marker is unreadable"
        if not isinstance(marker, dict):
            return "its completion marker is of the wrong shape"
        if marker.get("key") != recipe.key:
            return "its completion marker belongs to another environment"
        return recipe.unhealthy(prefix)

    def ensure(self, recipe: Recipe, log: Log) -> tuple[Path, bool]:
        """The ready environment's prefix, building it if needed; and whether it was built."""
        try:
            return self._ensure(recipe, log)
        except OSError as exc:  # a full disk, a read-only cache, something in the way
            where = exc.filename or self.root
            raise EnvError(f"the environment store cannot be used ({where}): "
                           f"{exc.strerror or exc}") from None

    def _ensure(self, recipe: Recipe, log: Log) -> tuple[Path, bool]:
        prefix = self.prefix(recipe.key)
        if self.problem(recipe) is None:
            self._touch(prefix)
            return prefix, False
        name = f"the {recipe.kind} environment {recipe.key[:12]}"
        with locked(self._lock_file(recipe.key, ".lock"), log, f"building {name}"):
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
        """Every environment in the store, with its marker (None: unfinished or unreadable, and
        `problem` says which) and last use."""
        if not self.root.is_dir():
            return []
        found = []
        for prefix in sorted(p for p in self.root.iterdir() if p.is_dir() and p.name != ".locks"):
            entry = _entry(prefix)
            if entry is not None:
                found.append(entry)
        return found

    def prune(self, older_than: float | None) -> tuple[list[str], list[str]]:
        """Remove environments unused for `older_than` seconds (all when None), and unfinished
        ones; each under its locks, so a build in progress or a run that holds it is never
        pulled away. The removed prefixes, and those skipped because a run holds them."""
        removed: list[str] = []
        held: list[str] = []
        for entry in self.entries():
            prefix = Path(entry["path"])
            if not _stale(entry, older_than):
                continue
            self._lock_file(prefix.name, ".use").parent.mkdir(parents=True, exist_ok=True)
            with open(self._lock_file(prefix.name, ".use"), "a+") as use:
                try:
                    fcntl.flock(use, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    held.append(str(prefix))  # a run uses it, or waits to build it
                    continue
                with locked(self._lock_file(prefix.name, ".lock"), lambda _: None, prefix.name):
                    again = _entry(prefix)  # a build may have finished while we waited
                    if again is not None and _stale(again, older_than):
                        shutil.rmtree(prefix, ignore_errors=True)
                        removed.append(str(prefix))
        return removed, held


def _stale(entry: dict[str, Any], older_than: float | None) -> bool:
    if entry["marker"] is None or older_than is None:
        return True
    return bool(time.time() - entry["last_used"] >= older_than)


def _entry(prefix: Path) -> dict[str, Any] | None:
    """What the store knows of one environment, whatever its marker holds; None when it is gone."""
    problem = None
    try:
        marker: Any = json.loads((prefix / MARKER).read_text(encoding="utf-8"))
    except FileNotFoundError:
        marker, problem = None, "unfinished build"
    except (OSError, ValueError, RecursionError):
        marker, problem = None, "unreadable completion marker"
    if marker is not None and not (
            isinstance(marker, dict) and isinstance(marker.get("key"), str)
            and isinstance(marker.get("kind"), str) and isinstance(marker.get("recipe"), dict)):
        marker, problem = None, "completion marker of the wrong shape"
    try:
        used = prefix / USED
        last = used.stat().st_mtime if used.exists() else prefix.stat().st_mtime
    except OSError:
        if not prefix.exists():
            return None
        last = 0.0
    return {"path": str(prefix), "marker": marker, "last_used": last, "problem": problem}
