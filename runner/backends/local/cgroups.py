"""cgroups of a step's own, where the OS lets us make one: one that caps memory, and one that
only keeps track of every process of the step (a process cannot leave its cgroup, whatever it
does with sessions, process groups or forks).

For memory, cgroup v1 (a writable memory controller) and v2 (memory.max) are both tried; when
neither works the limit is reported as not enforced, with the reason, rather than silently
ignored. A tracking group is a bonus: without one the guard's subreaper still sees the step's
processes (see backends/guard.py).
"""
from __future__ import annotations

import errno
import os
import signal
from dataclasses import dataclass
from pathlib import Path

_V1 = Path("/sys/fs/cgroup/memory")
_V2 = Path("/sys/fs/cgroup")
_ROOT = Path("/sys/fs/cgroup")  # where tracking groups are tried: v2 (or hybrid "unified"), v1 pids


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
class Cgroup:
    path: Path
    version: int

    @classmethod
    def track(cls, name: str) -> Cgroup | None:
        """A new, empty cgroup that only gathers the step's processes; None where none can be made."""
        candidates = [(2, _ROOT, ""), (2, _ROOT / "unified", ""), (1, _ROOT / "pids", "pids")]
        for version, base, controller in candidates:
            if version == 2 and not (base / "cgroup.controllers").exists():
                continue
            if version == 1 and not (base / "cgroup.procs").exists():
                continue
            group = base / _own_path(controller).lstrip("/") / name
            try:
                group.mkdir()
            except OSError:
                continue  # not ours to write (a systemd session scope): try the next
            return cls(group, version)
        return None

    def join(self, pid: int = 0) -> bool:
        """Move a process (this one: 0) inside; what it starts next is inside too. False where
        refused."""
        try:
            with open(self.path / "cgroup.procs", "w") as handle:
                handle.write(str(pid or os.getpid()))
        except OSError:
            return False
        return True

    def leave(self) -> None:
        """Back to the parent cgroup: what was started meanwhile stays inside."""
        try:
            with open(self.path.parent / "cgroup.procs", "w") as handle:
                handle.write(str(os.getpid()))
        except OSError:
            pass  # kill() spares this process anyway

    def pids(self) -> list[int]:
        try:
            return [int(line) for line in (self.path / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def kill(self) -> None:
        """SIGKILL every process inside: at once where the kernel has cgroup.kill (v2, 5.14+)."""
        if self.version == 2 and os.getpid() not in self.pids():
            try:
                (self.path / "cgroup.kill").write_text("1")
                return
            except OSError:
                pass
        for pid in self.pids():
            if pid != os.getpid():
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass

    def remove(self, wait: float = 1.0) -> None:
        """Remove the (empty) group; a process killed just now may take a moment to leave it."""
        import time

        deadline = time.monotonic() + wait
        while True:
            try:
                self.path.rmdir()
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    return  # something still inside that will not go: left for the kernel
            time.sleep(0.01)


@dataclass
class MemoryLimit(Cgroup):
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
