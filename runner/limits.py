"""Memory limits through a cgroup of the step's own, where the OS lets us make one.

cgroup v1 (a writable memory controller) and v2 (memory.max) are both tried; when neither works
the limit is reported as not enforced, with the reason, rather than silently ignored.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_V1 = Path("/sys/fs/cgroup/memory")
_V2 = Path("/sys/fs/cgroup")


def _own_path(controller: str) -> str:
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return "/"
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(",") or (controller == "" and controllers == ""):
            return path
    return "/"


@dataclass
class MemoryLimit:
    path: Path
    version: int
    limit: int

    @classmethod
    def create(cls, name: str, limit: int) -> tuple[MemoryLimit | None, str]:
        """A new cgroup capped at `limit` bytes, or None and the reason it could not be made."""
        reasons = []
        for version, base, files in (
            (1, _V1 / _own_path("memory").lstrip("/"), ("memory.limit_in_bytes",)),
            (2, _V2 / _own_path("").lstrip("/"), ("memory.max",)),
        ):
            usable = (base / files[0]).exists() or (version == 2 and (base / "cgroup.controllers").exists())
            if not usable:
                reasons.append(f"cgroup v{version}: no memory controller at {base}")
                continue
            group = base / name
            try:
                group.mkdir()
                (group / files[0]).write_text(str(limit))
                swap = group / ("memory.memsw.limit_in_bytes" if version == 1 else "memory.swap.max")
                if swap.exists():
                    try:
                        swap.write_text(str(limit) if version == 1 else "0")
                    except OSError:
                        pass  # swap accounting off: the RAM limit still holds
                return cls(group, version, limit), ""
            except OSError as exc:
                reasons.append(f"cgroup v{version}: {exc.strerror or exc}")
                try:
                    group.rmdir()
                except OSError:
                    pass
        return None, "; ".join(reasons)

    def join(self) -> None:
        """Runs in the child between fork and exec: the step and all it starts are inside."""
        with open(self.path / "cgroup.procs", "w") as handle:
            handle.write(str(os.getpid()))

    def peak(self) -> int | None:
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        try:
            return int((self.path / name).read_text().strip())
        except (OSError, ValueError):
            return None

    def hit_limit(self) -> bool:
        try:
            # v1 counts OOM kills in memory.oom_control (memory.failcnt is not kept everywhere)
            name = "memory.oom_control" if self.version == 1 else "memory.events"
            events = (self.path / name).read_text().split()
            return int(dict(zip(events[::2], events[1::2], strict=False)).get("oom_kill", "0")) > 0
        except (OSError, ValueError):
            return False

    def remove(self) -> None:
        try:
            self.path.rmdir()
        except OSError:
            pass  # a process still inside; the kernel frees it with the last one
