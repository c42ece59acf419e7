"""The package is fully typed (mypy --strict) and lint-clean (ruff), checked like any test."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed (it comes with the [test] extra)")
    return found


def test_mypy_strict(tmp_path: Path) -> None:
    # The import names map onto the repository's top level (spec/ is mlproject.spec, ...):
    # give mypy that layout through links instead of teaching it setuptools' package-dir.
    layout = tmp_path / "mlproject"
    layout.mkdir()
    for package in ("spec", "runner", "templates"):
        (layout / package).symlink_to(REPO / package)
    done = subprocess.run(
        [_tool("mypy"), "--strict", "--namespace-packages", "--explicit-package-bases",
         "--no-incremental", "-p", "mlproject.spec", "-p", "mlproject.runner"],
        cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff() -> None:
    done = subprocess.run([_tool("ruff"), "check", "spec", "runner", "tests", "benchmarks"],
                          cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
