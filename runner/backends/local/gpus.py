"""Which GPUs this machine lets a step see."""
from __future__ import annotations

import os
import shutil

from mlproject.runner.util import proc


def visible() -> list[str]:
    """Device ids a step may use: CUDA_VISIBLE_DEVICES when set (a scheduler such as Slurm set
    it, or the user), otherwise the GPUs nvidia-smi lists."""
    preset = os.environ.get("CUDA_VISIBLE_DEVICES")
    if preset is not None:
        ids = [d.strip() for d in preset.split(",") if d.strip()]
        return [] if ids[:1] in (["-1"], ["NoDevFiles"]) else ids
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = proc.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], timeout=20)
    except proc.ProcError:
        return []
    return [line.strip() for line in out.stdout.decode().splitlines() if line.strip()]
