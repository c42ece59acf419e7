"""Tracking from inside a step: `from mlproject import log`.

    log.metric("loss", 0.31, step=3)      # one point of a series (per epoch, per batch)
    log.metrics({"acc": 0.9, "f1": 0.8})   # several at once, at the same step
    log.param("optimizer", "adam")        # a value the code chose (not an MLproject parameter)
    log.artifact("plots/confusion.png")   # a file or directory, copied into the run now

What is logged lands in the current run's directory (`MLPROJECT_RUN_DIR`, set by mlproject for
every step) and reaches the run's record, its lock entry and the report when the step ends: the
last value of each metric is the run's metric, the points are its series. Outside a run (no
`MLPROJECT_RUN_DIR`) every call does nothing, so the same code runs in a notebook.

This module is self-contained on purpose (the standard library only, nothing heavy imported):
mlproject puts its directory on the step's PYTHONPATH, so it imports in every environment a step
runs in, also a locked one that does not list mlproject.

Thread- and process-safe: each process appends to a file of its own (`tracking/PID-HOST.jsonl`,
so no two writers share one, also on a network filesystem where appends are not atomic), and
each call writes its lines with one `write` under a lock of this process.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["active", "artifact", "metric", "metrics", "param", "params"]

FORMAT = 1  # of a line; mlproject.runner.tracking.read reads it
_lock = threading.Lock()
_file: dict[str, Any] = {}  # {"pid": .., "dir": .., "fd": ..}: this process's open file


def active() -> bool:
    """Whether the calls record anything: the code runs as a step of mlproject."""
    return bool(os.environ.get("MLPROJECT_RUN_DIR"))


def _tracking_dir() -> str | None:
    run_dir = os.environ.get("MLPROJECT_RUN_DIR")
    return os.path.join(run_dir, "tracking") if run_dir else None


def _fd(directory: str) -> int:
    pid = os.getpid()
    if _file.get("pid") != pid or _file.get("dir") != directory:  # a fork gets a file of its own
        os.makedirs(directory, exist_ok=True)
        name = f"{pid}-{socket.gethostname()}.jsonl".replace(os.sep, "_")
        opened = os.open(os.path.join(directory, name),
                         os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        _file.update(pid=pid, dir=directory, fd=opened)
    fd: int = _file["fd"]
    return fd


def _write(entries: list[dict[str, Any]]) -> None:
    directory = _tracking_dir()
    if directory is None or not entries:
        return
    data = "".join(json.dumps(e, separators=(",", ":"), allow_nan=False) + "\n"
                   for e in entries).encode()
    with _lock:
        fd = _fd(directory)
        while data:  # a short write (a signal, a full disk) is continued, never left half
            written = os.write(fd, data)
            data = data[written:]


def _name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name or len(name) > 250 or "\0" in name:
        raise ValueError(f"mlproject.log: a {what} name is a non-empty string of at most 250 "
                         f"characters, not {name!r}")
    return name


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:  # numpy and torch scalars have __float__
            value = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"mlproject.log: metric {name!r} must be a number, not "
                            f"{type(value).__name__}") from None
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"mlproject.log: metric {name!r} is {number}, not a finite number")
    return number


def _step(step: Any) -> int | None:
    if step is None:
        return None
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"mlproject.log: step must be a non-negative integer, not {step!r}")
    return step


def metric(name: str, value: float, step: int | None = None) -> None:
    """One value of metric `name` (at `step`: an epoch, a batch; None: no step)."""
    metrics({name: value}, step=step)


def metrics(values: Mapping[str, float], step: int | None = None) -> None:
    """Several metrics at once, at the same step."""
    if not active():
        return
    at = _step(step)
    now = time.time()
    _write([{"v": FORMAT, "kind": "metric", "name": _name(k, "metric"),
             "value": _number(k, v), "step": at, "time": now} for k, v in values.items()])


def param(name: str, value: Any) -> None:
    """A value the code chose or found (a default it used, the number of rows it read)."""
    params({name: value})


def params(values: Mapping[str, Any]) -> None:
    if not active():
        return
    _write([{"v": FORMAT, "kind": "param", "name": _name(k, "parameter"), "value": str(v)[:6000]}
            for k, v in values.items()])


def artifact(path: str | os.PathLike[str], name: str | None = None) -> str | None:
    """Copy a file or directory into the run (its `artifacts/` directory) as it is now; the path
    it was copied to, or None outside a run. A later change to `path` does not reach the run."""
    run_dir = os.environ.get("MLPROJECT_RUN_DIR")
    if not run_dir:
        return None
    source = os.fspath(path)
    target_name = _name(name or os.path.basename(os.path.normpath(source)), "artifact")
    if target_name in (".", "..") or "/" in target_name:
        raise ValueError(f"mlproject.log: an artifact name is a file name, not {target_name!r}")
    target = os.path.join(run_dir, "artifacts", target_name)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.isdir(source):
        shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
    else:
        shutil.copyfile(source, target)
    _write([{"v": FORMAT, "kind": "artifact", "name": target_name, "source": source,
             "time": time.time()}])
    return target
