"""Parameter types: which values fit, and how a value becomes command text (as MLflow does)."""
from __future__ import annotations

import re
from typing import Any

TYPES = ("string", "int", "float", "bool", "path", "uri")
ALIASES = {"str": "string", "boolean": "bool"}

_INT = re.compile(r"[+-]?[0-9]+")
_BOOL = {"true", "false", "yes", "no", "on", "off", "1", "0"}
_TRUE = {"true", "yes", "on", "1"}
_FLOAT = re.compile(r"([+-]?)([0-9_]*)(?:\.([0-9_]*))?([eE][+-]?[0-9_]+)?")
_SURROGATE = re.compile("[\ud800-\udfff]")
_URI_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def canonical(type_name: str) -> str:
    return ALIASES.get(type_name, type_name)


def as_text(value: Any) -> str:
    """MLflow str()s YAML values: `false` becomes `False`, `1e-1` stays `1e-1` (a string)."""
    return str(value)


def unfit_text(text: str) -> str | None:
    """Why `text` cannot reach a process (as an argument, or in a command), or None."""
    if "\0" in text:
        return "contains a NUL byte, which no program can receive"
    bad = _SURROGATE.search(text)
    if bad:
        code = ord(bad.group())
        what = (f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF  # argv's surrogateescape
                else f"lone surrogate {ascii(bad.group())[1:-1]}")
        return f"is not UTF-8 text (at character {bad.start() + 1}: {what})"
    return None


def canonical_text(type_name: str, text: str) -> str:
    """One text for one value of a bool or number, so that the command and the fingerprint do
    not depend on its spelling: bool -> True/False (`-P flag=true`, `yes`, `on`, `1` are one
    value); int -> no sign for positives, no leading zeros (`01`, `+1` are `1`); float -> the
    same for the integer part, trailing zeros of the fraction dropped to one (`0.50` -> `0.5`),
    `e` for `E`, notation kept (`1e-1` stays, as MLflow's corpus writes it, and `0.1` stays).
    A text that does not fit its type is returned as it is (its error is reported elsewhere).
    MLflow str()s YAML values (`false` -> `False`), so Python's spelling keeps the command of
    every MLflow file's bool defaults exactly as MLflow builds it."""
    stripped = text.strip()
    if type_name == "bool" and stripped.lower() in _BOOL:
        return "True" if stripped.lower() in _TRUE else "False"
    if type_name == "int" and _INT.fullmatch(stripped):
        return _integer(stripped)
    if type_name == "float" and type_error("float", text) is None:
        return _float(stripped)
    return text


def _integer(text: str) -> str:
    # Digits only: int() refuses more than 4300 digits, and a value has no reason to be short.
    sign, digits = ("-", text[1:]) if text[0] == "-" else ("", text.lstrip("+"))
    digits = digits.lstrip("0") or "0"
    return ("" if digits == "0" else sign) + digits


def _float(text: str) -> str:
    match = _FLOAT.fullmatch(text)
    if match is None or not (match.group(2) or match.group(3)):
        return text.lower().replace("infinity", "inf").lstrip("+")  # inf, nan and the like
    sign, whole, fraction, exponent = (g.replace("_", "") if g else g for g in match.groups())
    whole = whole.lstrip("0") or "0"
    number = ("-" if sign == "-" else "") + whole
    if fraction is not None:
        number += "." + (fraction.rstrip("0") or "0")
    return number + (exponent.lower() if exponent else "")


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
