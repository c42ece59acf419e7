"""Facts about the world that resolution needs, gathered before it (resolution itself is pure)."""
from __future__ import annotations

import os
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
        python_version=".".join(map(str, sys.version_info[:3])),
        platform=f"{sys.platform}-{os.uname().machine}",
    )
