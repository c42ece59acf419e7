"""Content hashes: DVC-compatible md5 of files and directories, and canonical JSON digests."""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_CHUNK = 1 << 20


def canonical_digest(value: Any) -> str:
    """sha256 of the canonical JSON of `value` (sorted keys, no whitespace, UTF-8)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def file_md5(path: str) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class ContentHash:
    md5: str  # a file's md5, or DVC's `<md5>.dir` for a directory
    size: int
    nfiles: int

    def to_json(self) -> dict[str, Any]:
        return {"md5": self.md5, "size": self.size, "nfiles": self.nfiles}


def dir_listing(root: str) -> list[tuple[str, str, int]]:
    """(relpath with '/', md5, size) of every file below `root`, sorted by relpath as DVC does."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            entries.append((rel, file_md5(full), os.path.getsize(full)))
    entries.sort()
    return entries


def dir_md5(listing: Iterable[tuple[str, str]]) -> str:
    """DVC's directory hash of (relpath, md5) pairs: md5 of its JSON listing sorted by relpath."""
    body = json.dumps([{"md5": md5, "relpath": rel} for rel, md5 in sorted(listing)], sort_keys=True)
    return hashlib.md5(body.encode()).hexdigest() + ".dir"


def content_hash(path: str) -> ContentHash:
    """DVC's hash of a file or a directory; raises OSError when `path` does not exist."""
    if os.path.isdir(path):
        listing = dir_listing(path)
        md5 = dir_md5((rel, md5) for rel, md5, _ in listing)
        return ContentHash(md5, sum(size for _, _, size in listing), len(listing))
    return ContentHash(file_md5(path), os.path.getsize(path), 1)
