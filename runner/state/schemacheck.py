"""A JSON Schema read strictly, for the small part of the language mlproject's own published
schemas use: reading a run record checks it against `record.schema.json` itself, so the schema
is the one truth of the record's shape, without importing jsonschema on the run path.

Keywords understood: type, enum, const, required, properties, additionalProperties, items,
prefixItems, minItems, maxItems, minimum, pattern (searched, as JSON Schema does); title,
description, format, $schema and $id are annotations. A schema using any other keyword is refused
(`keywords_unknown`; a test keeps the published schemas within it). JSON is read strictly: a
number is finite (RFC 8259 has no NaN or infinity; Python's json reads them) and an integer is
written without a fraction, so what passes here passes jsonschema too.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

KNOWN = frozenset({"type", "enum", "const", "required", "properties", "additionalProperties",
                   "items", "prefixItems", "minItems", "maxItems", "minimum", "pattern",
                   "title", "description", "format", "$schema", "$id"})


def keywords_unknown(schema: Any) -> set[str]:
    """The keywords of `schema` (and of the schemas inside it) this checker does not know."""
    found: set[str] = set()
    for node in _schemas(schema):
        found |= set(node) - KNOWN
    return found


def _schemas(schema: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(schema, dict):
        return
    yield schema
    for inner in schema.get("properties", {}).values():
        yield from _schemas(inner)
    yield from _schemas(schema.get("additionalProperties"))
    yield from _schemas(schema.get("items"))
    for inner in schema.get("prefixItems", ()):
        yield from _schemas(inner)


def problem(value: Any, schema: dict[str, Any], path: str = "") -> str | None:
    """Why `value` does not fit `schema`, in words ("has host.pid "x", not an integer"), or None.
    Properties are checked in the schema's order, so the first problem said is the same each
    time; a required property that is missing is said where the schema names it."""
    if "const" in schema and not _same(value, schema["const"]):
        return f"has {path} {shown_value(value)}, not {shown_value(schema['const'])}"
    if "enum" in schema and not any(_same(value, v) for v in schema["enum"]):
        return (f"has {path} {shown_value(value)}, not one of "
                f"{', '.join(str(v) for v in schema['enum'])}")
    types = schema.get("type")
    if types is not None:
        allowed = [types] if isinstance(types, str) else list(types)
        if not any(_is(value, t) for t in allowed):
            return f"has {path} {shown_value(value)}, not {' or '.join(map(_article, allowed))}"
    if isinstance(value, list):
        return _list_problem(value, schema, path)
    if "minimum" in schema and type(value) in (int, float) and value < schema["minimum"]:
        return f"has {path} {shown_value(value)}, less than {schema['minimum']}"
    if "pattern" in schema and isinstance(value, str):
        import re

        if not re.search(schema["pattern"], value):
            return f"has {path} {shown_value(value)}, which is not of the form {schema['pattern']}"
    if not isinstance(value, dict):
        return None
    properties: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", ()))
    for name in [*properties, *(r for r in schema.get("required", ()) if r not in properties)]:
        inner = f"{path}.{name}" if path else name
        if name not in value:
            if name in required:
                return f"has no {inner}"
            continue
        why = problem(value[name], properties.get(name, {}), inner)
        if why:
            return why
    extra = schema.get("additionalProperties", True)
    if extra is True:
        return None
    for name, item in value.items():
        if name in properties:
            continue
        inner = f"{path}.{name}" if path else name
        if extra is False:
            return f"has {inner}, which is no part of {path or 'a record'}"
        why = problem(item, extra, inner)
        if why:
            return why
    return None


def _list_problem(value: list[Any], schema: dict[str, Any], path: str) -> str | None:
    if len(value) < schema.get("minItems", 0):
        return f"has {path} with {len(value)} items, fewer than {schema['minItems']}"
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        return f"has {path} with {len(value)} items, more than {schema['maxItems']}"
    first: list[dict[str, Any]] = schema.get("prefixItems", [])
    rest = schema.get("items")
    for i, item in enumerate(value):
        inner = first[i] if i < len(first) else rest
        if isinstance(inner, dict):
            why = problem(item, inner, f"{path}[{i}]")
            if why:
                return why
    return None


def _same(value: Any, expected: Any) -> bool:
    return type(value) is type(expected) and value == expected  # 1 is no True, 1.0 no 1


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return type(value) is int
    if kind == "number":
        return type(value) in (int, float) and _finite(value)
    return {"string": str, "boolean": bool, "object": dict, "array": list,
            "null": type(None)}.get(kind) is type(value)


def _finite(value: int | float) -> bool:
    try:
        return abs(float(value)) < float("inf")
    except OverflowError:  # an int beyond a float's range: no reader can format or compare it
        return False


def _article(kind: str) -> str:
    return {"integer": "an integer", "number": "a finite number", "object": "an object",
            "array": "a list", "null": "null", "boolean": "a boolean"}.get(kind, f"a {kind}")


def shown_value(value: Any) -> str:
    """A value in a message: as JSON, cut short."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."
