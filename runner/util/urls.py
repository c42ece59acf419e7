"""URLs in what people and records read."""
from __future__ import annotations

import re


def redact(url: str) -> str:
    """The URL with its credentials (a user part: `user:password@`, a token) replaced by ***:
    what a record, a log or a message may show of it."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@", r"\1***@", url)
