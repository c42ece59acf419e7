"""Durations (`90s`, `30m`, `2h`, `1h30m`, seconds) and memory sizes (`512Mi`, `16Gi`, `2G`)."""
from __future__ import annotations

import math
import re

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_DURATION = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h|d))+")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_MEMORY = re.compile(r"([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|K|k|M|G|T)?")
_BYTES = {
    None: 1, "K": 10**3, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}


def seconds(value: str | float) -> float:
    """Seconds of a number or of a text such as 1h30m; ValueError for anything else (a part
    that is not a duration is never skipped: `30dxyz` is not 30 days) or a result that is not
    a finite number."""
    if isinstance(value, str):
        if not _DURATION.fullmatch(value):
            raise ValueError(f"not a duration: {value!r}")
        total = sum(float(n) * _SECONDS[u] for n, u in _DURATION_PART.findall(value))
    else:
        total = float(value)
    if not math.isfinite(total):
        raise ValueError(f"not a finite duration: {value!r}")
    return total


def memory_bytes(value: str | int) -> int:
    if not isinstance(value, str):
        return int(value)
    match = _MEMORY.fullmatch(value)
    if not match:
        raise ValueError(f"not a memory size: {value!r}")
    return int(float(match.group(1)) * _BYTES[match.group(2)])


def format_bytes(size: int) -> str:
    for unit, factor in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B" if size < 2**20 else f"{size / 2**20:.1f}Mi"


def format_seconds(value: float) -> str:
    if value < 60:
        return f"{value:g}s"
    minutes, secs = divmod(round(value), 60)
    hours, minutes = divmod(minutes, 60)
    return "".join(f"{n}{u}" for n, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if n)
