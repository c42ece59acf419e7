"""What every part of the data package shares: its one error type and the log callback."""
from __future__ import annotations

from collections.abc import Callable

Log = Callable[[str], None]


def quiet(_: str) -> None:
    pass


class DataError(Exception):
    """Data that cannot be pinned, verified or pulled; the message says what to do about it."""
