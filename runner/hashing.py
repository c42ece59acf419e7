"""Content hashes: DVC-compatible md5 of files and directories, and canonical JSON digests."""
from __future__ import annotations

import hashlib
import json
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


def dir_md5(listing: Iterable[tuple[str, str]]) -> str:
    """DVC's directory hash of (relpath, md5) pairs: md5 of its JSON listing sorted by relpath."""
    body = json.dumps([{"md5": md5, "relpath": rel} for rel, md5 in sorted(listing)], sort_keys=True)
    return hashlib.md5(body.encode()).hexdigest() + ".dir"
