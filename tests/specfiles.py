"""Helpers for the tests of `load()`'s problems: write an MLproject file, read back its errors
or warnings as the user reads them."""
from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mlproject.runner.state.speccache import load_cached as load  # as the CLI loads
from mlproject.spec import Spec, SpecError

TYPES = "string, int, float, bool, path, uri"
Cli = Callable[..., Any]  # the `cli` fixture of conftest.py
IGNORED = "(ignored, as MLflow does; an error under --strict)"


def write(root: Path, text: str, name: str = "MLproject") -> Path:
    path = root / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def errors(root: Path, text: str, *, strict: bool = False) -> list[str]:
    """Every problem of the file, as the user reads them; the file must be refused."""
    write(root, text)
    with pytest.raises(SpecError) as caught:
        load("MLproject", strict=strict)
    lines = [str(p) for p in caught.value.problems]
    assert str(caught.value) == "\n".join(lines)
    return lines


def warnings(root: Path, text: str) -> list[str]:
    write(root, text)
    spec = load("MLproject")
    assert isinstance(spec, Spec)
    return [str(p) for p in spec.warnings]

