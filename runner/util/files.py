"""Files written so that nobody ever reads a part of one, read from an offset, and where
mlproject's user cache is."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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



@contextmanager
def locked(path: Path, log: Callable[[str], None], doing: str) -> Iterator[None]:
    """An exclusive lock on the file `path` (made, with its directory, if need be) while the
    block runs; when another process holds it, `log` says once that this one waits for the
    other, which is `doing` something."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another mlproject that is {doing}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
