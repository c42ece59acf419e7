"""Bytecode compiled once per package, not once per environment.

uv hard-links every file of an environment from the unpacked wheels in its cache, and links a
wheel's `__pycache__` along with it when there is one. So the bytecode is compiled *in the
cache*, where every later environment with the same packages reuses it (a .pyc is checked
against its source's mtime and size, which a hard link shares; CPython corrects the file name
recorded in it on load). uv's cache layout is not a public interface: when the wheels cannot be
found there, the environment is simply compiled in place, which is slower but as correct.
"""
from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

from mlproject.runner.envs.requirements import PackagePin

# Runs in the environment's interpreter (the .pyc files must be of its version): compile what
# the cached wheels lack, link their .pyc files into the environment's site-packages (where uv
# linked the sources), then compile in place whatever is still without one. Prints how many
# files it compiled in the cache, linked, and compiled in place.
_COMPILE_AND_LINK = """
import compileall, importlib.util, os, shutil, sys
site, tops = sys.argv[1], sys.argv[2:]

def uncompiled(top):
    for root, _, files in os.walk(top):
        for f in files:
            if f.endswith(".py") and not os.path.exists(
                    importlib.util.cache_from_source(os.path.join(root, f))):
                yield os.path.join(root, f)

missing = sum(1 for top in tops for _ in uncompiled(top))
linked = 0
if missing:
    for top in tops:
        compileall.compile_dir(top, quiet=2, workers=0)
for top in tops:
    for root, _, files in os.walk(top):
        if os.path.basename(root) != "__pycache__":
            continue
        dest = os.path.join(site, os.path.relpath(root, top))
        if not os.path.isdir(os.path.dirname(dest)):
            continue
        os.makedirs(dest, exist_ok=True)
        for name in files:
            target = os.path.join(dest, name)
            if not os.path.exists(target):
                try:
                    os.link(os.path.join(root, name), target)
                except OSError:
                    shutil.copy2(os.path.join(root, name), target)
                linked += 1
rest = list(uncompiled(site))
if len(rest) > 50:
    compileall.compile_dir(site, quiet=2, workers=0)
else:
    for path in rest:
        compileall.compile_file(path, quiet=2)
print(missing, linked, len(rest))
"""


def wheel_dirs(uv_cache: Path, pins: Iterable[PackagePin]) -> list[str]:
    """The unpacked wheels in uv's cache that an environment of these pins links to."""
    found: list[str] = []
    for pin in pins:
        where = f"{pin.name}/{pin.version}-*"
        for pattern in (f"wheels-v*/*/{where}", f"wheels-v*/*/*/{where}"):
            for link in glob.glob(str(uv_cache / pattern)):
                if os.path.islink(link) and os.path.isdir(link):
                    found.append(os.path.realpath(link))
    return sorted(set(found))


def compile_script() -> str:
    return _COMPILE_AND_LINK
