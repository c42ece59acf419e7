"""The user cache directory, and the record of files already validated against the schema.

Validating with jsonschema costs ~100 ms of imports; a file whose exact bytes were validated
before (same schema, same strictness) skips it. Entries are written atomically and a broken one
is simply validated again.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
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
    return cache_root() / "specs" / f"{digest}.pickle"


def built_spec(content: bytes, strict: bool) -> Any:
    """The Spec built before from these exact bytes by this exact loader, or None.

    Loading it skips YAML, the schema and the builder (about half of `mlproject run`'s own
    start-up). Anything unreadable, or of another shape than this loader builds, is removed and
    None returned: the file is simply loaded again, and the entry written anew."""
    entry = _spec_entry(content, strict)
    try:
        data = entry.read_bytes()
    except OSError:
        return None
    try:
        built = _unpickle_spec(data)
        if _well_typed(built):
            return built
    except Exception:  # a broken entry of any kind only costs a full load
        pass
    _discard(entry)
    return None


def _unpickle_spec(data: bytes) -> Any:
    """pickle.loads that resolves only the spec's own classes: an entry in the cache directory
    (which may be shared, or written by anyone who can write there) never imports or calls
    anything else."""
    import importlib
    import io
    import pickle

    class SpecOnly(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            if module.startswith("mlproject.spec.") and not name.startswith("_"):
                found = getattr(importlib.import_module(module), name, None)
                if isinstance(found, type):
                    return found
            raise pickle.UnpicklingError(f"{module}.{name} is not part of a spec")

    return SpecOnly(io.BytesIO(data)).load()


def _well_typed(value: Any) -> bool:
    """Whether a loaded Spec holds, all the way down, what its annotations say."""
    from mlproject.spec.model import Spec

    return isinstance(value, Spec) and _fits(value, Spec)


def _fits(value: Any, hint: Any, depth: int = 0) -> bool:
    import dataclasses
    import types
    import typing
    from collections.abc import Mapping

    if depth > 32:
        return False
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return True
    if hint is None or hint is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg, depth + 1) for arg in args)
    if origin is typing.Literal:
        return any(value == arg and type(value) is type(arg) for arg in args)
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(item, args[0], depth + 1) for item in value)
        return len(args) == len(value) and all(
            _fits(item, arg, depth + 1) for item, arg in zip(value, args, strict=True))
    if origin in (Mapping, dict):
        return isinstance(value, dict) and all(
            _fits(k, args[0], depth + 1) and _fits(v, args[1], depth + 1) for k, v in value.items())
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if type(value) is not hint:
            return False
        hints = _hints(hint)
        return set(vars(value)) == set(hints) and all(
            _fits(getattr(value, name), item, depth + 1) for name, item in hints.items())
    if hint is float:
        return type(value) in (int, float)
    if isinstance(hint, type):
        return type(value) is hint
    return False


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        import dataclasses
        import typing

        every = typing.get_type_hints(cls)
        _HINTS[cls] = {f.name: every[f.name] for f in dataclasses.fields(cls)}
    return _HINTS[cls]


def _discard(entry: Path) -> None:
    try:
        entry.unlink()
    except OSError:
        pass


def remember_spec(content: bytes, strict: bool, spec: Any) -> None:
    import pickle

    entry = _spec_entry(content, strict)
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=entry.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            pickle.dump(spec, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, entry)
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
