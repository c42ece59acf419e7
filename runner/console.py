"""Progress for people: on stderr, prefixed, flushed at once (results go to stdout)."""
from __future__ import annotations

import sys


def say(message: str) -> None:
    sys.stderr.write(f"mlproject: {message}\n")
    sys.stderr.flush()
