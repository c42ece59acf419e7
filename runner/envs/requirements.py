"""Python requirement files: which are locks (every requirement pinned with ==), their pins, and
whether their hashes let uv install with --require-hashes. pylock.toml (PEP 751) too."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlproject.runner.envs.base import EnvError

_REQ = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(===|==)\s*([^\s;]+)\s*(?:;(.*))?$")
_HASH = re.compile(r"--hash[=\s]+(\S+)")
_INDEX_OPTIONS = {"-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--no-index"}
_INCLUDE = re.compile(r"^(-r|--requirement|-c|--constraint)[=\s]+(\S+)$")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    hashes: tuple[str, ...] = ()
    marker: str | None = None

    def to_json(self) -> list[Any]:
        return [self.name, self.version, list(self.hashes), self.marker]


@dataclass(frozen=True)
class Requirements:
    pins: tuple[Pin, ...]
    loose: tuple[str, ...]  # requirements that are not pinned with == (not a lock)
    options: tuple[str, ...] = ()  # index options: where packages come from, not which

    def as_lock(self) -> str:
        """A flat requirements file of the pins, for `uv pip sync`."""
        lines = list(self.options)
        for pin in self.pins:
            marker = f" ; {pin.marker}" if pin.marker else ""
            hashes = "".join(f" --hash={h}" for h in pin.hashes)
            lines.append(f"{pin.name}=={pin.version}{marker}{hashes}")
        return "\n".join(lines) + "\n"

    @property
    def locked(self) -> bool:
        return not self.loose

    @property
    def hashed(self) -> bool:
        return bool(self.pins) and all(p.hashes for p in self.pins)


def _logical_lines(text: str) -> list[str]:
    lines, current = [], ""
    for raw in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            lines.append(current.strip())
        current = ""
    if current.strip():
        lines.append(current.strip())
    return lines


def parse(text: str, base: Path, seen: frozenset[Path] = frozenset()) -> Requirements:
    """Pins and loose requirements of a requirements file, following -r includes."""
    pins: list[Pin] = []
    loose: list[str] = []
    options: list[str] = []
    for line in _logical_lines(text):
        include = _INCLUDE.match(line)
        if include:
            if include.group(1) in ("-c", "--constraint"):
                continue  # constraints narrow a resolution; they install nothing themselves
            path = (base / include.group(2)).resolve()
            if path in seen:
                raise EnvError(f"{path} includes itself")
            try:
                nested = parse(path.read_text(), path.parent, seen | {path})
            except OSError as exc:
                raise EnvError(f"cannot read {path} (included from {base}): {exc.strerror}") from None
            pins += nested.pins
            loose += nested.loose
            options += nested.options
            continue
        if line.startswith("-"):
            if line.startswith(("-e", "--editable")):
                loose.append(line)
            elif line.split()[0].split("=")[0] in _INDEX_OPTIONS:
                options.append(line)
            continue
        hashes = tuple(sorted(_HASH.findall(line)))
        requirement = _HASH.sub("", line).strip()
        match = _REQ.match(requirement)
        if match:
            marker = (match.group(5) or "").strip() or None
            pins.append(Pin(normalize(match.group(1)), match.group(4), hashes, marker))
        else:
            loose.append(requirement)
    return Requirements(tuple(sorted(pins, key=lambda p: (p.name, p.marker or ""))), tuple(loose),
                        tuple(dict.fromkeys(options)))


def parse_pylock(text: str, origin: str) -> Requirements:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        raise EnvError(f"{origin}: reading pylock.toml needs Python 3.11 or later") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise EnvError(f"{origin} is not valid TOML: {exc}") from None
    pins = []
    for package in data.get("packages", []):
        files = list(package.get("wheels", [])) + ([package["sdist"]] if "sdist" in package else [])
        hashes = sorted(f"{algo}:{value}" for f in files for algo, value in f.get("hashes", {}).items())
        pins.append(Pin(normalize(package["name"]), str(package.get("version", "")), tuple(hashes),
                        package.get("marker")))
    return Requirements(tuple(sorted(pins, key=lambda p: (p.name, p.marker or ""))), ())


def read(path: Path) -> Requirements:
    try:
        text = path.read_text()
    except OSError as exc:
        raise EnvError(f"cannot read {path}: {exc.strerror}") from None
    if path.name == "pylock.toml" or (path.name.startswith("pylock.") and path.suffix == ".toml"):
        return parse_pylock(text, str(path))
    return parse(text, path.parent, frozenset({path.resolve()}))
