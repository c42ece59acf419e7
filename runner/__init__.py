"""Resolve an MLproject into a plan, execute it on a backend, and record what ran."""
from __future__ import annotations

__version__ = "0.1.0"
