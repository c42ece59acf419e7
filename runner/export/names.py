"""MLflow's rules for metric, parameter and tag names, and a deterministic way to meet them.

mlproject takes any name a step logs; MLflow refuses some (mlflow.utils.validation, 2.9 to 3.17:
`validate_param_and_metric_name`, `path_not_unique`, MAX_ENTITY_KEY_LENGTH). An export never
fails on a name: one MLflow refuses is rewritten the same way every time, and the record keeps
the original (the export notes the mapping in a tag).
"""
from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Iterable

MAX_KEY = 250  # MLflow's MAX_ENTITY_KEY_LENGTH
# MLflow's set off Windows: slashes, word characters, periods, dashes, spaces, colons
_REFUSED = re.compile(r"[^/\w.\- :]")


def accepted(name: str) -> bool:
    """Whether MLflow takes `name` as it is: allowed characters, at most MAX_KEY of them, and a
    path that names itself (MLflow may store names as files)."""
    if not name or len(name) > MAX_KEY or _REFUSED.search(name):
        return False
    normal = posixpath.normpath(name)
    return normal == name and normal != "." and not normal.startswith(("..", "/"))


def _tag(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def sanitised(name: str) -> str:
    """A name MLflow accepts, made from `name`: each refused character becomes `_`; where the
    result is no plain path (`a/..`, `/a`, `a//b`), its slashes become `_` too; a leading `.`
    that would read as the current or parent directory becomes `_`; a name too long is cut and
    ends with a digest of the whole, so that two long names stay apart."""
    out = _REFUSED.sub("_", name)
    if not accepted(out):
        out = out.replace("/", "_")
    if out in ("", ".") or out.startswith(".."):
        out = "_" + out[1:]
    if len(out) > MAX_KEY:
        out = f"{out[:MAX_KEY - 9]}-{_tag(name)}"
    return out


def assign(names: Iterable[str], taken: Iterable[str] = ()) -> dict[str, str]:
    """Each name -> the name it is exported under, unique among them and apart from `taken`.
    Names MLflow accepts keep theirs; the others are `sanitised`, and where that collides, get
    `-` and a digest of the original. The same names always give the same mapping."""
    wanted = list(dict.fromkeys(names))
    used = set(taken)
    out: dict[str, str] = {}
    for name in wanted:
        if accepted(name) and name not in used:
            out[name] = name
            used.add(name)
    for name in wanted:
        if name in out:
            continue
        candidate = sanitised(name)
        if candidate in used:
            candidate = f"{candidate[:MAX_KEY - 9]}-{_tag(name)}"
        while candidate in used:  # a digest taken as well: deterministic all the same
            candidate = f"{candidate[:MAX_KEY - 9]}-{_tag(candidate)}"
        out[name] = candidate
        used.add(candidate)
    return out
