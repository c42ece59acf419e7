"""Metrics a step writes to its `metrics` file (JSON or YAML), flattened to dotted names.

The file is the step's, so anything may be in it; reading it never raises and never hangs, and
what is wrong becomes the record's `metrics_error` while the step keeps its own status. Bounds:

- MAX_BYTES, 1 MiB: a metrics file holds summary numbers (MLflow's log_batch takes at most
  1000 a call); 1 MiB of JSON is ~30,000 of them and parses in ~25 ms, and every record carries
  its metrics, so `mlproject runs` reads them all again. YAML parses at ~0.17 MB/s here
  (PyYAML's safe loader): 16 MiB would hold mlproject for over a minute after the step ended.
  Larger results belong in `outputs`.
- MAX_DEPTH, 32 levels of nesting, and MAX_VALUES, 100,000 values visited: YAML aliases can
  make a small file expand without end (a billion laughs), and a name 33 levels deep is a
  mistake, not a metric.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

MAX_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_VALUES = 100_000


class _Refused(ValueError):
    pass


def _name(key: Any) -> str:
    """A key as the YAML text that wrote it (`true`, `null`, `1`), not as Python's repr."""
    if isinstance(key, bool) or key is None:
        return json.dumps(key)
    return str(key)


class _Flattener:
    def __init__(self) -> None:
        self.out: dict[str, float] = {}
        self.notes: list[str] = []
        self.seen = 0

    def visit(self, value: Any, prefix: str, depth: int) -> None:
        self.seen += 1
        if self.seen > MAX_VALUES:
            raise _Refused(f"holds more than {MAX_VALUES} values")
        if depth > MAX_DEPTH:
            raise _Refused(f"is nested deeper than {MAX_DEPTH} levels (at {prefix})")
        if isinstance(value, dict):
            for key, item in value.items():
                self.visit(item, f"{prefix}.{_name(key)}" if prefix else _name(key), depth + 1)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            self.number(prefix, value)
        # strings, lists, booleans and nulls are not metrics: left out, as MLflow's are

    def number(self, name: str, value: float) -> None:
        try:
            as_float = float(value)
        except OverflowError:  # an int beyond a float's range: no other tool could read it
            self.notes.append(f"{name} = {_short(value)} is too large to record")
            return
        if as_float != as_float or as_float in (float("inf"), float("-inf")):
            self.notes.append(f"{name} = {value!r} is not a finite number")
        elif name in self.out:
            self.notes.append(f"{name} is given twice")
        else:
            self.out[name] = value


def _short(value: float) -> str:
    digits = len(str(abs(int(value)))) if int(value).bit_length() < 14000 else "thousands of"
    return f"an integer of {digits} digits"


_KINDS = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}


def _text(path: Path) -> str:
    """The file's text, read only if it is a regular file (a FIFO would block) and small."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        import stat

        if not stat.S_ISREG(info.st_mode):
            raise _Refused("is not a regular file")
        data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise _Refused(f"is larger than {MAX_BYTES >> 20} MiB (the limit for metrics; "
                       "write large results as outputs)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _Refused(f"is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                       f"{exc.start})") from None


def _parse(path: Path, text: str) -> Any:
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            # the pure-Python loader: its recursion on deep nesting is a RecursionError, where
            # libyaml's bindings, before PyYAML 6.0.4's depth limit, would overflow the C stack
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise _Refused(f"is not valid YAML: {' '.join(str(exc).split())}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise _Refused(f"is not valid JSON: {exc}") from None


def read(path: Path) -> tuple[dict[str, float], str | None]:
    """(metrics, problem): the numbers in the file, and what is wrong with it, if anything.
    Never raises: whatever the step left there, its record is completed."""
    from mlproject.runner.util.hashing import shown

    label = f"metrics file {shown(path.name)}"
    try:
        data = _parse(path, _text(path))
        if not isinstance(data, dict):
            kind = "nothing" if data is None else _KINDS.get(type(data), type(data).__name__)
            raise _Refused(f"holds {kind}; expected a mapping of names to numbers")
        flat = _Flattener()
        flat.visit(data, "", 0)
    except FileNotFoundError:
        return {}, f"{label} was not written"
    except _Refused as exc:
        return {}, f"{label} {exc}"
    except RecursionError:
        return {}, f"{label} is nested too deeply to read"
    except OSError as exc:
        return {}, f"{label}: cannot read it: {exc.strerror or exc}"
    except (MemoryError, Exception) as exc:  # a parser's own failure: still never a traceback
        return {}, f"{label} cannot be read: {type(exc).__name__}: {shown(str(exc))[:200]}"
    notes = flat.notes
    if not notes:
        return flat.out, None
    more = f" (and {len(notes) - 5} more)" if len(notes) > 5 else ""
    return flat.out, f"{label}: left out: {'; '.join(notes[:5])}{more}"
