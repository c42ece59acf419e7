"""The statuses a run can have, shared by every module that makes, records or reads one."""
from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    """A run's status, as its record writes it (the value). Compares equal to its value."""

    QUEUED = "queued"  # submitted to an engine, not started yet
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # mlproject was asked to stop (Ctrl-C, SIGTERM, SIGHUP)
    TIMEOUT = "timeout"  # it ran past resources.timeout
    OOM = "oom"  # killed for going past its memory limit
    CANCELLED = "cancelled"  # stopped by `mlproject cancel` or through the engine
    CRASHED = "crashed"  # left `running` by an mlproject that no longer exists (read, never written)

    def __str__(self) -> str:
        return self.value

    @property
    def final(self) -> bool:
        """Whether the run has ended (nothing will change its record any more)."""
        return self not in (Status.QUEUED, Status.RUNNING)
