"""The user cache directory, the record of files already validated against the schema, and
the Specs already built (as JSON: a cache directory may be shared, so it holds data, never code).

Validating with jsonschema costs ~100 ms of imports; a file whose exact bytes were validated
before (same schema, same strictness) skips it. Entries are written atomically and a broken one
is simply validated again.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def cache_root() -> Path:
    explicit = os.environ.get("MLPROJECT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mlproject"


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` so that readers see the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the mode open() would
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _code_stamp() -> bytes:
    """What the loader is: its files' sizes and times. A built spec from other code is stale."""
    here = Path(__file__).parent
    stamps = []
    for name in sorted(os.listdir(here)):
        if name.endswith((".py", ".json")):
            stat = os.stat(here / name)
            stamps.append(f"{name}:{stat.st_size}:{stat.st_mtime_ns}")
    return "\n".join(stamps).encode()


def _spec_entry(content: bytes, strict: bool) -> Path:
    digest = hashlib.sha256(_code_stamp() + b"\0" + bytes([strict]) + content).hexdigest()
    return cache_root() / "specs" / f"{digest}.json"  # entries of older forms: never read


SPEC_FORMAT = 1  # of the JSON form below; another value is a stale entry


def built_spec(content: bytes, strict: bool) -> Any:
    """The Spec built before from these exact bytes by this exact loader, or None.

    Loading it skips YAML, the schema and the builder (about half of `mlproject run`'s own
    start-up). The entry is data, never code (the cache directory may be shared, or written by
    anyone who can write there): JSON, each field checked against the model's annotations.
    Anything unreadable or of another shape is removed and None returned: the file is simply
    loaded again, and the entry written anew."""
    entry = _spec_entry(content, strict)
    try:
        text = entry.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        text = ""
    try:
        return spec_from_json(text)
    except Exception:  # a broken entry of any kind only costs a full load
        pass
    _discard(entry)
    return None


def spec_to_json(spec: Any) -> str:
    """The Spec as canonical JSON: sorted keys, mappings as [key, value] pairs in their order."""
    from mlproject.spec.model import Spec

    return json.dumps({"format": SPEC_FORMAT, "spec": _encode(spec, Spec)},
                      sort_keys=True, separators=(",", ":"), allow_nan=False)


def spec_from_json(text: str) -> Any:
    """The Spec that `spec_to_json` wrote; ValueError for anything else."""
    from mlproject.spec.model import Spec

    found = json.loads(text)
    if type(found) is not dict or found.keys() != {"format", "spec"} \
            or found["format"] != SPEC_FORMAT or type(found["format"]) is not int:
        raise _Misfit("not a built spec of this format")
    return _decoder(Spec)(found["spec"])


class _Misfit(ValueError):
    pass


def _encode(value: Any, hint: Any) -> Any:
    import dataclasses
    import typing
    from collections.abc import Mapping

    origin = typing.get_origin(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return {name: _encode(getattr(value, name), item) for name, item in _hints(hint).items()}
    if origin is tuple:
        return [_encode(item, typing.get_args(hint)[0]) for item in value]
    if origin in (Mapping, dict):
        return [[key, _encode(item, typing.get_args(hint)[1])] for key, item in value.items()]
    if origin is not None and typing.get_origin(hint) is not typing.Literal:  # a union
        for arm in typing.get_args(hint):
            if _is_instance(value, arm):
                return _encode(value, arm)
    return value  # a scalar, or Any (plain JSON data from the YAML file)


def _is_instance(value: Any, arm: Any) -> bool:
    import typing

    if arm is type(None):
        return value is None
    base = typing.get_origin(arm) or arm
    return base is typing.Literal or isinstance(value, base)


Decoder = Callable[[Any], Any]
_DECODERS: dict[Any, Decoder] = {}


def _decoder(hint: Any) -> Decoder:
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
                raise _Misfit(f"{value!r} is not one of {args}")
            return value
        return literal
    if origin in (typing.Union, types.UnionType):
        arms = [_decoder(arg) for arg in args]

        def union(value: Any) -> Any:
            for arm in arms:
                try:
                    return arm(value)
                except _Misfit:
                    pass
            raise _Misfit(f"{value!r} fits none of {args}")
        return union
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = _decoder(args[0])

        def sequence(value: Any) -> Any:
            if type(value) is not list:
                raise _Misfit("expected a list")
            return tuple(item(x) for x in value)
        return sequence
    if origin in (Mapping, dict):
        key, item = _decoder(args[0]), _decoder(args[1])

        def mapping(value: Any) -> Any:
            if type(value) is not list or not all(type(p) is list and len(p) == 2 for p in value):
                raise _Misfit("expected [key, value] pairs")
            out = {key(k): item(v) for k, v in value}
            if len(out) != len(value):
                raise _Misfit("a key is repeated")
            return out
        return mapping
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass(hint)
    raise TypeError(f"no JSON form for {hint!r}")


def _dataclass(cls: type) -> Decoder:
    fields: list[tuple[str, Decoder]] = []
    names: set[str] = set()

    def build(value: Any) -> Any:
        if not fields:  # filled on first use: a class may refer to itself, and a Placeholder's
            # hints import the shell lexer, which a file without placeholders never needs
            fields.extend((name, _decoder(item)) for name, item in _hints(cls).items())
            names.update(name for name, _ in fields)
        if type(value) is not dict or value.keys() != names:
            raise _Misfit(f"expected the fields of {cls.__name__}")
        return cls(**{name: decode(value[name]) for name, decode in fields})
    return build


def _exactly(kind: type) -> Decoder:
    def check(value: Any) -> Any:
        if type(value) is not kind:
            raise _Misfit(f"expected {kind.__name__}")
        return value
    return check


def _number(value: Any) -> Any:
    if type(value) not in (int, float):
        raise _Misfit("expected a number")
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


def _discard(entry: Path) -> None:
    try:
        entry.unlink()
    except OSError:
        pass


def remember_spec(content: bytes, strict: bool, spec: Any) -> None:
    try:
        text = spec_to_json(spec)
        if spec_from_json(text) != spec:  # data that JSON cannot hold exactly is not cached
            return
    except (TypeError, ValueError):
        return
    try:
        write_atomic(_spec_entry(content, strict), text)
    except OSError:
        pass  # a read-only cache only costs speed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _entry(schema: bytes, content: bytes, strict: bool) -> Path:
    digest = hashlib.sha256(schema + b"\0" + bytes([strict]) + content).hexdigest()
    return cache_root() / "validated" / f"{digest}.json"


def lookup(schema: bytes, content: bytes, strict: bool) -> list[dict[str, Any]] | None:
    """The warnings recorded for a file validated before, or None when it must be validated.
    An entry of any other shape (a torn or foreign file) is removed: validated anew, it is
    written again."""
    entry = _entry(schema, content, strict)
    try:
        found = json.loads(entry.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError):
        found = None
    if isinstance(found, list) and all(_is_warning(item) for item in found):
        return found
    _discard(entry)
    return None


def _is_warning(item: Any) -> bool:
    """A warning as `remember` writes it: 1-based position, a document path, a message."""
    return (isinstance(item, dict) and set(item) == {"line", "col", "path", "message"}
            and all(type(item[k]) is int and item[k] >= 0 for k in ("line", "col"))
            and isinstance(item["path"], list)
            and all(type(part) in (str, int) for part in item["path"])
            and isinstance(item["message"], str))


def remember(schema: bytes, content: bytes, strict: bool, warnings: list[dict[str, Any]]) -> None:
    try:
        write_atomic(_entry(schema, content, strict), json.dumps(warnings))
    except OSError:
        pass  # a read-only cache only costs speed
