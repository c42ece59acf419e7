"""Parameter types: which values fit, and how a value becomes command text (as MLflow does)."""
from __future__ import annotations

import re
from typing import Any

TYPES = ("string", "int", "float", "bool", "path", "uri")
ALIASES = {"str": "string", "boolean": "bool"}

_INT = re.compile(r"[+-]?[0-9]+")
_BOOL = {"true", "false", "yes", "no", "on", "off", "1", "0"}
_URI_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def canonical(type_name: str) -> str:
    return ALIASES.get(type_name, type_name)


def as_text(value: Any) -> str:
    """MLflow str()s YAML values: `false` becomes `False`, `1e-1` stays `1e-1` (a string)."""
    return str(value)


def type_error(type_name: str, text: str) -> str | None:
    """Why `text` does not fit `type_name`, or None when it does."""
    if type_name == "int":
        return None if _INT.fullmatch(text.strip()) else "expected an integer"
    if type_name == "float":
        try:
            float(text)
        except ValueError:
            return "expected a number"
        return None
    if type_name == "bool":
        return None if text.strip().lower() in _BOOL else "expected true or false"
    if type_name == "uri":
        return None if is_uri(text) else "expected a URI with a scheme, such as s3://bucket/key or file:///data"
    if type_name == "path":
        return "expected a path, got an empty value" if not text else None
    return None


def is_uri(text: str) -> bool:
    # As MLflow: anything with a scheme; a Windows drive letter is not one.
    match = _URI_SCHEME.match(text)
    return match is not None and len(match.group(0)) > 2
