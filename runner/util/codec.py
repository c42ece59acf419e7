"""A typed JSON form for frozen dataclasses: values are encoded by their annotations, and read
back only when every field has the annotated type (a cache or a plan file is data, never code).

Mappings are written as [key, value] pairs so that their order survives; tuples as lists.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Misfit(ValueError):
    pass


def encode(value: Any, hint: Any) -> Any:
    import dataclasses
    import typing
    from collections.abc import Mapping

    origin = typing.get_origin(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return {name: encode(getattr(value, name), item) for name, item in _hints(hint).items()}
    if origin is tuple:
        return [encode(item, typing.get_args(hint)[0]) for item in value]
    if origin in (Mapping, dict):
        return [[key, encode(item, typing.get_args(hint)[1])] for key, item in value.items()]
    if origin is not None and typing.get_origin(hint) is not typing.Literal:  # a union
        for arm in typing.get_args(hint):
            if _is_instance(value, arm):
                return encode(value, arm)
    return value  # a scalar, or Any (plain JSON data from the YAML file)


def _is_instance(value: Any, arm: Any) -> bool:
    import typing

    if arm is type(None):
        return value is None
    base = typing.get_origin(arm) or arm
    return base is typing.Literal or isinstance(value, base)


Decoder = Callable[[Any], Any]
_DECODERS: dict[Any, Decoder] = {}


def decoder(hint: Any) -> Decoder:
    """A function that checks a JSON value against `hint` and builds it: made once per hint,
    since it runs on every `mlproject run`."""
    try:
        return _DECODERS[hint]
    except KeyError:
        pass
    except TypeError:  # an unhashable hint
        return _compile(hint)
    made = _DECODERS[hint] = _compile(hint)
    return made


def _compile(hint: Any) -> Decoder:
    import dataclasses
    import types
    import typing
    from collections.abc import Mapping

    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return _plain
    if hint is type(None) or hint is None:
        return _exactly(type(None))
    if hint is float:
        return _number
    if hint in (str, int, bool):
        return _exactly(hint)
    if origin is typing.Literal:
        allowed = frozenset((type(arg), arg) for arg in args)

        def literal(value: Any) -> Any:
            if (type(value), value) not in allowed:
                raise Misfit(f"{value!r} is not one of {args}")
            return value
        return literal
    if origin in (typing.Union, types.UnionType):
        arms = [decoder(arg) for arg in args]

        def union(value: Any) -> Any:
            for arm in arms:
                try:
                    return arm(value)
                except Misfit:
                    pass
            raise Misfit(f"{value!r} fits none of {args}")
        return union
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = decoder(args[0])

        def sequence(value: Any) -> Any:
            if type(value) is not list:
                raise Misfit("expected a list")
            return tuple(item(x) for x in value)
        return sequence
    if origin in (Mapping, dict):
        key, item = decoder(args[0]), decoder(args[1])

        def mapping(value: Any) -> Any:
            if type(value) is not list or not all(type(p) is list and len(p) == 2 for p in value):
                raise Misfit("expected [key, value] pairs")
            out = {key(k): item(v) for k, v in value}
            if len(out) != len(value):
                raise Misfit("a key is repeated")
            return out
        return mapping
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass(hint)
    raise TypeError(f"no JSON form for {hint!r}")


def _dataclass(cls: type) -> Decoder:
    fields: list[tuple[str, Decoder]] = []
    names: set[str] = set()
    optional: set[str] = set()  # fields with a default: data written before they were added

    def build(value: Any) -> Any:
        import dataclasses

        if not fields:  # filled on first use: a class may refer to itself, and a Placeholder's
            # hints import the shell lexer, which a file without placeholders never needs
            fields.extend((name, decoder(item)) for name, item in _hints(cls).items())
            names.update(name for name, _ in fields)
            optional.update(f.name for f in dataclasses.fields(cls)
                            if f.default is not dataclasses.MISSING
                            or f.default_factory is not dataclasses.MISSING)
        if type(value) is not dict or not (names - optional <= value.keys() <= names):
            raise Misfit(f"expected the fields of {cls.__name__}")
        return cls(**{name: decode(value[name]) for name, decode in fields if name in value})
    return build


def _exactly(kind: type) -> Decoder:
    def check(value: Any) -> Any:
        if type(value) is not kind:
            raise Misfit(f"expected {kind.__name__}")
        return value
    return check


def _number(value: Any) -> Any:
    if type(value) not in (int, float):
        raise Misfit("expected a number")
    return value


def _plain(value: Any) -> Any:
    return value  # json.loads made it: plain data, whatever its shape


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        import dataclasses
        import sys
        import typing

        names = dict(vars(sys.modules[cls.__module__]))
        if cls.__name__ == "Placeholder":  # its Context is imported only for type checkers
            from mlproject.spec.shell import Context
            names["Context"] = Context
        every = typing.get_type_hints(cls, globalns=names)
        _HINTS[cls] = {f.name: every[f.name] for f in dataclasses.fields(cls)}
    return _HINTS[cls]

