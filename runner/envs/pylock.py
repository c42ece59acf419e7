"""pylock.toml (PEP 751): a lock by definition; read with its shape checked, never trusted."""
from __future__ import annotations

from typing import Any

from mlproject.runner.envs.base import EnvError, normalize
from mlproject.runner.envs.requirements import PackagePin, Requirements


def parse_pylock(text: str, origin: str) -> Requirements:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        raise EnvError(f"{origin}: reading pylock.toml needs Python 3.11 or later") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise EnvError(f"{origin} is not valid TOML: {exc}") from None
    packages = data.get("packages", [])
    if not isinstance(packages, list):
        raise EnvError(f"{origin}: packages: expected an array of tables")
    pins = [_pin(package, f"{origin}: packages[{index}]") for index, package in enumerate(packages)]
    ordered = tuple(sorted(pins, key=lambda p: (p.name, p.marker or "")))
    return Requirements(ordered, (), (), tuple(sorted({p.name for p in pins})))


def _pin(package: Any, where: str) -> PackagePin:
    if not isinstance(package, dict) or not isinstance(package.get("name"), str):
        raise EnvError(f"{where}: expected a table with a name")
    marker = package.get("marker")
    if marker is not None and not isinstance(marker, str):
        raise EnvError(f"{where}.marker: expected a string")
    wheels = package.get("wheels", [])
    sdist = package.get("sdist")
    if not isinstance(wheels, list) or (sdist is not None and not isinstance(sdist, dict)):
        raise EnvError(f"{where}: wheels must be an array of tables and sdist a table")
    hashes: list[str] = []
    for entry in [*wheels, *([sdist] if sdist is not None else [])]:
        found = entry.get("hashes", {}) if isinstance(entry, dict) else None
        if not isinstance(found, dict) or not all(isinstance(v, str) for v in found.values()):
            raise EnvError(f"{where}: each file's hashes must be a table of strings")
        hashes += (f"{algo}:{value}" for algo, value in found.items())
    return PackagePin(normalize(package["name"]), str(package.get("version", "")), tuple(sorted(hashes)),
               marker)
