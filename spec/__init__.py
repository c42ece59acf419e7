"""The MLproject format: its JSON Schema, the loader and the typed model."""
from __future__ import annotations

from mlproject.spec.errors import Problem, SpecError
from mlproject.spec.load import find_spec_file, load
from mlproject.spec.model import (
    DataInput,
    EntryPoint,
    Environment,
    Gate,
    Model,
    Parameter,
    Resources,
    Spec,
)

__all__ = [
    "DataInput",
    "EntryPoint",
    "Environment",
    "Gate",
    "Model",
    "Parameter",
    "Problem",
    "Resources",
    "Spec",
    "SpecError",
    "find_spec_file",
    "load",
]
