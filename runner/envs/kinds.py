"""The kinds of environment a step can run in, shared by every module that names one."""
from __future__ import annotations

from enum import Enum


class EnvKind(str, Enum):
    """An environment's kind, as plans and records write it (the value)."""

    LOCAL = "local"  # the interpreter mlproject runs in, with what it has installed
    PYTHON = "python"  # a virtual environment built by uv from a lock
    CONDA = "conda"  # a conda environment installed from conda-lock.yml
    DOCKER = "docker"  # a container image

    def __str__(self) -> str:
        return self.value
