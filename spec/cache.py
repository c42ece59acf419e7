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
    start-up). Anything unreadable is ignored: the file is simply loaded again."""
    import pickle

    try:
        return pickle.loads(_spec_entry(content, strict).read_bytes())
    except Exception:  # a broken entry of any kind only costs a full load
        return None


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
    """The warnings recorded for a file validated before, or None when it must be validated."""
    try:
        found = json.loads(_entry(schema, content, strict).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, list) else None


def remember(schema: bytes, content: bytes, strict: bool, warnings: list[dict[str, Any]]) -> None:
    try:
        write_atomic(_entry(schema, content, strict), json.dumps(warnings))
    except OSError:
        pass  # a read-only cache only costs speed
