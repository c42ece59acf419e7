"""An environment's recipe as plan data: plain JSON that another machine reads back, checked
field by field against the kind's typed form (a plan file is data, never code)."""
from __future__ import annotations

from typing import Any, TypeVar

from mlproject.runner.envs.base import EnvError

T = TypeVar("T")


def encoded(value: Any, cls: type) -> dict[str, Any]:
    """`value` (an instance of the frozen dataclass `cls`) as JSON data."""
    from mlproject.runner.util.codec import encode

    found: dict[str, Any] = encode(value, cls)
    return found


def decoded(cls: type[T], data: Any, what: str) -> T:
    """`data` read back as a `cls`; EnvError naming `what` (e.g. "a python environment") and the
    field that does not fit."""
    from mlproject.runner.util.codec import Misfit, decoder

    try:
        found: T = decoder(cls)(data)
    except Misfit as exc:
        raise EnvError(f"its data in the plan does not fit {what}: {exc}") from None
    return found
