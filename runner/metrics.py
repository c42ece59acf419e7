"""Metrics a step writes to its `metrics` file (JSON or YAML), flattened to dotted names."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def _flatten(value: Any, prefix: str, out: dict[str, float]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        out[prefix] = value


def read(path: Path) -> tuple[dict[str, float], str | None]:
    """(metrics, problem): the numbers in the file, or why none could be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, f"metrics file {path.name} was not written"
    except OSError as exc:
        return {}, f"metrics file {path.name}: {exc.strerror}"
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except ValueError as exc:
        return {}, f"metrics file {path.name} is not valid: {exc}"
    except Exception as exc:  # yaml's errors have no common base with ValueError
        return {}, f"metrics file {path.name} is not valid: {exc}"
    out: dict[str, float] = {}
    _flatten(data, "", out)
    return out, None
