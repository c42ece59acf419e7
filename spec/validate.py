"""Validation against the JSON Schema, with every error mapped back to a line and column."""
from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from mlproject.spec.errors import DocPath, Problem, Severity
from mlproject.spec.yamlpos import Document

SCHEMA_PATH = Path(__file__).with_name("schema.json")

_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "true or false",
    "null": "nothing",
}


@lru_cache(maxsize=1)
def schema_text() -> bytes:
    return SCHEMA_PATH.read_bytes()


@lru_cache(maxsize=1)
def _validator() -> Any:
    from jsonschema import Draft202012Validator  # heavy: only when a file is new to the cache

    return Draft202012Validator(json.loads(schema_text()))


def describe(value: Any) -> str:
    """A YAML user's word for a value, not a Python repr."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check(doc: Document, file: str, strict: bool) -> list[Problem]:
    problems: list[Problem] = []
    for error in _validator().iter_errors(doc.data):
        problems.extend(_problems(error, doc, file, strict))
    return problems


def _problems(error: Any, doc: Document, file: str, strict: bool) -> Iterator[Problem]:
    path: DocPath = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    if "propertyNames" in error.schema_path:
        # A bad key: point at the key itself, not at the mapping that holds it.
        key_path = path + (error.instance,)
        message = schema.get("x-error", "{instance!r} is not a valid key").format(instance=error.instance)
        yield Problem(file, *doc.locate_key(key_path), key_path, message)
        return
    if error.validator == "additionalProperties":
        known = list(schema.get("properties", {}))
        for key in error.instance:
            if key in known:
                continue
            key_path = path + (key,)
            severity: Severity = "error" if strict else "warning"
            note = "" if strict else " (ignored, as MLflow does; an error under --strict)"
            yield Problem(file, *doc.locate_key(key_path), key_path,
                          f"unknown key {key!r}{_suggest(key, known)}{note}", severity)
        return
    if error.validator in ("anyOf", "oneOf") and "x-error" not in schema:
        branch = _matching_branch(error)
        if branch:
            for sub in branch:
                yield from _problems(sub, doc, file, strict)
            return
    yield Problem(file, *doc.locate(path), path, _message(error, schema))


def _matching_branch(error: Any) -> list[Any] | None:
    """Of the alternatives, the errors of the one whose type fits the value, if just one does."""
    branches: dict[int, list[Any]] = {}
    for sub in error.context or ():
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    fitting = [errs for errs in branches.values()
               if not any(e.validator == "type" and not e.relative_path for e in errs)]
    return fitting[0] if len(fitting) == 1 else None


def _message(error: Any, schema: dict[str, Any]) -> str:
    if "x-error" in schema:
        return str(schema["x-error"]).format(instance=error.instance)
    if error.validator == "type":
        wanted = error.validator_value
        names = [wanted] if isinstance(wanted, str) else list(wanted)
        expected = " or ".join(_TYPE_NAMES.get(n, n) for n in names)
        return f"expected {expected}, got {describe(error.instance)}"
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        return "missing required key " + ", ".join(repr(k) for k in missing)
    if error.validator == "minProperties" and not error.instance:
        return "must not be empty"
    if error.validator == "enum":
        options = ", ".join(str(o) for o in error.validator_value)
        return f"{describe(error.instance)} is not one of {options}"
    if error.validator == "const":
        return f"expected {error.validator_value!r}, got {describe(error.instance)}"
    return str(error.message)


def _suggest(key: str, known: list[str]) -> str:
    # MLflow files carry `{type str}` and `{type:float}`: a key glued to its value.
    for sep in (" ", ":"):
        head, _, tail = key.partition(sep)
        if tail and head in known:
            return f" (did you mean '{head}: {tail.strip()}'?)"
    import difflib

    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""
