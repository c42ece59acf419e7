"""The user cache of loaded MLproject files: which exact bytes were validated against the schema,
and the Specs already built from them (as JSON: a cache directory may be shared, so it holds
data, never code).

Validating with jsonschema costs ~100 ms of imports; a file whose exact bytes were validated
before (same schema, same strictness) skips it, and one built before skips YAML, the schema and
the builder. Entries are written atomically; a broken one is removed and simply made again.
`spec.load` itself writes nothing: the CLI hands it this cache.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from mlproject.runner.util import codec
from mlproject.runner.util.files import cache_root, write_atomic
from mlproject.spec import Spec, load

SPEC_FORMAT = 1  # of the JSON form below; another value is a stale entry


def _code_stamp() -> bytes:
    """What the loader is: its files' sizes and times (and the codec's). A built spec from other
    code is stale."""
    import mlproject.spec

    here = Path(mlproject.spec.__file__).parent
    files = [here / name for name in sorted(os.listdir(here)) if name.endswith((".py", ".json"))]
    stamps = []
    for path in [*files, Path(codec.__file__)]:
        stat = os.stat(path)
        stamps.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return "\n".join(stamps).encode()


def _spec_entry(content: bytes, strict: bool) -> Path:
    digest = hashlib.sha256(_code_stamp() + b"\0" + bytes([strict]) + content).hexdigest()
    return cache_root() / "specs" / f"{digest}.json"  # entries of older forms: never read


def spec_to_json(spec: Spec) -> str:
    """The Spec as canonical JSON: sorted keys, mappings as [key, value] pairs in their order."""
    return json.dumps({"format": SPEC_FORMAT, "spec": codec.encode(spec, Spec)},
                      sort_keys=True, separators=(",", ":"), allow_nan=False)


def spec_from_json(text: str) -> Spec:
    """The Spec that `spec_to_json` wrote; ValueError for anything else."""
    found = json.loads(text)
    if type(found) is not dict or found.keys() != {"format", "spec"} \
            or found["format"] != SPEC_FORMAT or type(found["format"]) is not int:
        raise codec.Misfit("not a built spec of this format")
    built: Spec = codec.decoder(Spec)(found["spec"])
    return built


def _discard(entry: Path) -> None:
    try:
        entry.unlink()
    except OSError:
        pass


class SpecCache:
    """What `spec.load` asks of a cache (see `mlproject.spec.load.Cache`), kept in the user cache."""

    def built(self, content: bytes, strict: bool) -> Spec | None:
        """The Spec built before from these exact bytes by this exact loader, or None. Anything
        unreadable or of another shape is removed and None returned."""
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

    def remember_spec(self, content: bytes, strict: bool, spec: Spec) -> None:
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

    def validated(self, schema: bytes, content: bytes, strict: bool) -> list[dict[str, Any]] | None:
        """The warnings recorded for a file validated before, or None when it must be validated.
        An entry of any other shape (a torn or foreign file) is removed."""
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

    def remember(self, schema: bytes, content: bytes, strict: bool,
                 warnings: list[dict[str, Any]]) -> None:
        try:
            write_atomic(_entry(schema, content, strict), json.dumps(warnings))
        except OSError:
            pass  # a read-only cache only costs speed


def _entry(schema: bytes, content: bytes, strict: bool) -> Path:
    digest = hashlib.sha256(schema + b"\0" + bytes([strict]) + content).hexdigest()
    return cache_root() / "validated" / f"{digest}.json"


def _is_warning(item: Any) -> bool:
    """A warning as `remember` writes it: 1-based position, a document path, a message."""
    return (isinstance(item, dict) and set(item) == {"line", "col", "path", "message"}
            and all(type(item[k]) is int and item[k] >= 0 for k in ("line", "col"))
            and isinstance(item["path"], list)
            and all(type(part) in (str, int) for part in item["path"])
            and isinstance(item["message"], str))


def built_spec(content: bytes, strict: bool) -> Spec | None:
    return SpecCache().built(content, strict)


def load_cached(path: str | os.PathLike[str] = ".", *, strict: bool = False) -> Spec:
    """`spec.load` with this cache: what every verb uses."""
    return load(path, strict=strict, cache=SpecCache())
