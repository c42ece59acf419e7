"""Files written so that nobody ever reads a part of one, read from an offset, and where
mlproject's user cache is."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def cache_root() -> Path:
    explicit = os.environ.get("MLPROJECT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mlproject"


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write `text` (UTF-8 text, or bytes as they are) to `path` so that readers see the old
    file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text if isinstance(text, bytes) else text.encode("utf-8"))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the mode open() would
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_from(path: str, at: int) -> bytes:
    """What a file (a step's log) holds after its first `at` bytes; nothing where it cannot be
    read (not there yet, gone)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(at)
            return handle.read()
    except OSError:
        return b""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

