"""mlproject itself in the pod, mounted from this machine (setting `mount_mlproject`): its package,
the site-packages it runs from and uv's binary, read-only hostPath volumes. Only where the pod
runs on this very machine (a single-node cluster, the tests); elsewhere the image must have
mlproject installed, at the version of the submitting one. The image's python3 must be of the
same X.Y as this interpreter: compiled dependencies (PyYAML's) are built for it.
"""
from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASE = "/opt/mlproject"
LIB = f"{BASE}/lib"  # holds mlproject/ (the package, as installed)
SITE = f"{BASE}/site"  # the site-packages mlproject runs from here
BIN = f"{BASE}/bin"  # uv
PATH = f"{BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class HostMounts:
    """(name, host path, path in the pod) of each read-only volume, and the variables set."""
    volumes: tuple[tuple[str, str, str], ...]
    env: dict[str, str]
    note: str


def package_dir() -> Path:
    """The directory that is `mlproject` as installed here (an editable install: the tree)."""
    import mlproject.runner

    init = Path(mlproject.runner.__file__).resolve()  # .../mlproject/runner/__init__.py
    return init.parents[1]


def for_pod() -> HostMounts:
    """The mounts; pure: nothing is created (the paths exist: this process runs from them)."""
    volumes = [("mlproject-package", str(package_dir()), f"{LIB}/mlproject")]
    site = sysconfig.get_paths()["purelib"]
    volumes.append(("mlproject-site", os.path.realpath(site), SITE))
    platlib = sysconfig.get_paths()["platlib"]
    if os.path.realpath(platlib) != os.path.realpath(site):
        volumes.append(("mlproject-platlib", os.path.realpath(platlib), f"{BASE}/platlib"))
    uv = _uv()
    if uv is not None:
        volumes.append(("mlproject-uv", uv, f"{BIN}/uv"))
    paths = [LIB, *(pod for _, _, pod in volumes[1:] if not pod.startswith(BIN))]
    python = "{}.{}".format(*sys.version_info[:2])
    note = (f"mlproject is mounted from this machine (hostPath, read-only: {package_dir()} and "
            f"{site}): the pod must run on this machine, its image's python3 must be {python}, "
            "and the step's PYTHONPATH holds mlproject's own packages (mount_mlproject)")
    return HostMounts(tuple(volumes), {"PYTHONPATH": os.pathsep.join(paths), "PATH": PATH}, note)


def _uv() -> str | None:
    try:
        from mlproject.runner.envs.python import uv

        found = shutil.which(uv())
    except ImportError:
        found = shutil.which("uv")
    return os.path.realpath(found) if found else None


def volumes_of(mounts: HostMounts) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The pod's volumes and the container's volumeMounts for them."""
    kind = {"mlproject-uv": "File"}
    volumes = [{"name": name, "hostPath": {"path": host, "type": kind.get(name, "Directory")}}
               for name, host, _ in mounts.volumes]
    mounted = [{"name": name, "mountPath": pod, "readOnly": True}
               for name, _, pod in mounts.volumes]
    return volumes, mounted
