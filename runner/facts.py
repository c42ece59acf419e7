"""Facts about the world that resolution needs, gathered before it (resolution itself is pure)."""
from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass

from mlproject.runner import gitstate


@dataclass(frozen=True)
class Facts:
    cwd: str  # where the user ran mlproject: relative -P paths are taken from here
    code: gitstate.CodeState
    interpreter: str
    python_version: str
    platform: str


def gather(root: str) -> Facts:
    return Facts(
        cwd=os.getcwd(),
        code=gitstate.gather(root),
        interpreter=sys.executable,
        python_version=platform.python_version(),
        platform=f"{sys.platform}-{platform.machine()}",
    )
