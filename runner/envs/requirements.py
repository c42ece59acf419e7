"""Python requirement files, read as strictly as pip and uv read them: what is pinned, hashed,
included, and what is not. Whatever pip or uv would refuse is refused here, naming the file and
the line, and some things both accept in silence are refused too (a hash cut off from its
requirement by a broken continuation). pylock.toml (PEP 751) is read in pylock.py."""
from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlproject.runner.envs.base import EnvError, normalize
from mlproject.runner.envs.reqsyntax import decode, hash_value, logical_lines, split_options

_INDEX = ("--index-url", "--extra-index-url", "--find-links", "--no-index")  # passed on to uv
# Not PEP 508 but accepted by pip: a bare URL, archive or directory.
_DIRECT = re.compile(r"^(\.|/|~|[A-Za-z][A-Za-z0-9+.-]*://|file:)|\.(whl|zip|tar\.gz|tar\.bz2)$")


@dataclass(frozen=True)
class PackagePin:
    name: str
    version: str
    hashes: tuple[str, ...] = ()
    marker: str | None = None
    extras: tuple[str, ...] = ()

    def to_json(self) -> list[Any]:
        # extras only where there are some: the keys of environments without them stay as they were
        core: list[Any] = [self.name, self.version, list(self.hashes), self.marker]
        return core + [list(self.extras)] if self.extras else core

    @property
    def requirement(self) -> str:
        extras = f"[{','.join(self.extras)}]" if self.extras else ""
        return f"{self.name}{extras}=={self.version}"


@dataclass(frozen=True)
class Requirements:
    pins: tuple[PackagePin, ...]
    loose: tuple[str, ...]  # requirements that are not pinned with == (not a lock)
    options: tuple[str, ...] = ()  # index options: where packages come from, not which
    names: tuple[str, ...] = ()  # every package the file asks for (normalized), pinned or not
    sources: tuple[tuple[str, str], ...] = field(default=(), compare=False)  # (included file, sha256)

    def as_lock(self) -> str:
        """A flat requirements file of the pins, for `uv pip sync`."""
        lines = list(self.options)
        for pin in self.pins:
            marker = f" ; {pin.marker}" if pin.marker else ""
            hashes = "".join(f" --hash={h}" for h in pin.hashes)
            lines.append(f"{pin.requirement}{marker}{hashes}")
        return "\n".join(lines) + "\n"

    @property
    def locked(self) -> bool:
        """Every requirement pinned with ==."""
        return not self.loose

    @property
    def hashed(self) -> bool:
        return bool(self.pins) and all(p.hashes for p in self.pins)

    @property
    def is_lock(self) -> bool:
        """Taken as a complete lock: every requirement pinned and hashed, as pip's hash-checking
        mode demands of a file it installs without resolving (its completeness is checked in the
        built environment)."""
        return self.locked and self.hashed


@dataclass(frozen=True)
class _Item:
    where: str  # file:line
    text: str  # the requirement as written
    name: str | None
    pin: PackagePin | None
    hashes: tuple[str, ...]
    direct: bool  # a URL or path: pip accepts a hash on it, but it pins no version
    editable: bool
    group: int = 0  # requirements installed by one pip command (hash-checking mode is per command)


@dataclass
class _Reading:
    root: Path | None
    items: list[_Item] = field(default_factory=list)
    options: list[str] = field(default_factory=list)
    require_hashes: dict[int, str] = field(default_factory=dict)  # group: where it was given
    group: int = 0  # the group of the line being read
    sources: dict[str, str] = field(default_factory=dict)


def _requirement(text: str, hashes: tuple[str, ...], where: str, editable: bool) -> _Item:
    if editable or _DIRECT.search(text):
        return _Item(where, text, None, None, hashes, not editable, editable)
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        reason = str(exc).splitlines()[0]
        raise EnvError(f"{where}: {text!r} is not a valid requirement ({reason})") from None
    name = normalize(req.name)
    if req.url:
        return _Item(where, text, name, None, hashes, True, False)
    specs = list(req.specifier)
    marker = str(req.marker) if req.marker is not None else None
    if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
        pin = PackagePin(name, specs[0].version, tuple(sorted(set(hashes))), marker,
                  tuple(sorted(normalize(e) for e in req.extras)))
        return _Item(where, text, name, pin, hashes, False, False)
    return _Item(where, text, name, None, hashes, False, False)


def _include(value: str, where: str, origin: Path, chain: tuple[Path, ...], reading: _Reading,
             flag: str) -> Path:
    try:
        path = (origin.parent / value).resolve()
    except (OSError, ValueError) as exc:  # a NUL byte, a name too long, a loop of links
        raise EnvError(f"{where}: {flag} {value!r} is not a usable path: {exc}") from None
    if reading.root is not None and not path.is_relative_to(reading.root.resolve()):
        raise EnvError(f"{where}: {flag} {value} leaves the project ({path}): a project's "
                       "requirements stay inside it")
    if path == chain[-1]:
        raise EnvError(f"{where}: {flag} {value} includes itself")
    if path in chain:
        loop = " -> ".join(p.name for p in (*chain[chain.index(path):], path))
        raise EnvError(f"{where}: {flag} {value} makes a loop of includes: {loop}")
    return path


def _read_into(text: str, origin: Path, shown: str, chain: tuple[Path, ...], reading: _Reading,
               line_map: Sequence[int] | None = None, constraint: bool = False,
               groups: Sequence[int] | None = None) -> None:
    for index, where, line in logical_lines(text, shown, line_map):
        if groups is not None and index < len(groups):
            reading.group = groups[index]  # what it includes belongs to the including line's
        tokens = line.split()
        first = next((i for i, t in enumerate(tokens) if t.startswith("-")), len(tokens))
        requirement, options = " ".join(tokens[:first]), split_options(tokens[first:], where)
        hashes = tuple(hash_value(v, where) for n, v in options if n == "--hash")
        if requirement:
            others = [n for n, _ in options if n != "--hash"]
            if others:
                raise EnvError(f"{where}: {others[0]} cannot follow a requirement (only --hash can)")
            if not constraint:
                reading.items.append(replace(_requirement(requirement, hashes, where, False),
                                             group=reading.group))
            continue
        if hashes:
            raise EnvError(f"{where}: a --hash with no requirement before it on its line: the "
                           "requirement it belongs to is cut off (a `\\` missing or a line break)")
        if len(options) != 1:
            raise EnvError(f"{where}: one option a line (found {' '.join(tokens)!r})")
        name, value = options[0]
        if name in ("--requirement", "--constraint"):
            flag = "-r" if name == "--requirement" else "-c"
            path = _include(value, where, origin, chain, reading, flag)
            try:
                data = path.read_bytes()
            except (OSError, ValueError) as exc:
                raise EnvError(f"{where}: cannot read {path} ({flag} {value}): "
                               f"{getattr(exc, 'strerror', None) or exc}") from None
            reading.sources[str(path)] = hashlib.sha256(data).hexdigest()
            nested = _shown(path, reading.root)
            _read_into(decode(data, nested), path, nested, (*chain, path), reading,
                       constraint=constraint or name == "--constraint")
        elif name == "--editable":
            if not constraint:
                reading.items.append(replace(_requirement(f"-e {value}", (), where, True),
                                             group=reading.group))
        elif name == "--require-hashes":
            reading.require_hashes.setdefault(reading.group, where)
        elif name in _INDEX:
            reading.options.append(f"{name} {value}".rstrip())


def _shown(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return str(path.resolve().relative_to(root.resolve()))
        except ValueError:
            pass
    return str(path)


def _check_hashes(items: list[_Item], require_hashes: dict[int, str]) -> None:
    """pip's hash-checking mode: once one requirement has a hash (or --require-hashes is
    given), every requirement must be pinned and hashed, or pip refuses the file. It holds for
    one pip command: MLflow installs build_dependencies with one and dependencies with another."""
    for group in sorted({i.group for i in items} | set(require_hashes)):
        _check_group([i for i in items if i.group == group], require_hashes.get(group))


def _check_group(items: list[_Item], require_hashes: str | None) -> None:
    for item in items:
        if item.hashes and item.pin is None and not item.direct:
            raise EnvError(f"{item.where}: {item.text} has a --hash but is not pinned with ==: a "
                           "hash checks one exact version (pip refuses it)")
    hashed = next((i.where for i in items if i.hashes), None)
    mode = f"--require-hashes is given at {require_hashes}" if require_hashes else \
        f"{hashed} has a --hash" if hashed else None
    if mode is None:
        return
    for item in items:
        if item.editable:
            raise EnvError(f"{item.where}: {item.text} is editable, and {mode}: pip installs no "
                           "editable requirement when it checks hashes")
        if not item.hashes:
            raise EnvError(f"{item.where}: {item.text} has no --hash, while {mode}: pip refuses a "
                           "file that mixes hashed and unhashed requirements; hash every one "
                           "(`mlproject lock` writes such a file) or none")


def parse(text: str, origin: Path, *, root: Path | None = None, shown: str | None = None,
          line_map: Sequence[int] | None = None, groups: Sequence[int] | None = None) -> Requirements:
    """Pins and loose requirements of a requirements file, following -r includes (which must
    stay under `root`). `origin` is the file the text is from (includes are relative to it);
    `line_map` gives the line in `origin` of each line of `text` where it was assembled, and
    `groups` the pip command that installs each (hash-checking mode is per command)."""
    reading = _Reading(root)
    label = shown or _shown(origin, root)
    _read_into(text, origin, label, (origin.resolve(),), reading, line_map, groups=groups)
    _check_hashes(reading.items, reading.require_hashes)
    pins: dict[tuple[str, str], _Item] = {}
    for item in reading.items:
        if item.pin is None:
            continue
        key = (item.pin.name, item.pin.marker or "")
        other = pins.setdefault(key, item)
        if other.pin != item.pin:
            raise EnvError(f"{item.where}: {item.text} conflicts with {other.text} at {other.where}: "
                           "one package, one pin")
    ordered = sorted((i.pin for i in pins.values() if i.pin), key=lambda p: (p.name, p.marker or ""))
    loose = tuple(i.text for i in reading.items if i.pin is None)
    names = tuple(sorted({i.name for i in reading.items if i.name}))
    return Requirements(tuple(ordered), loose, tuple(dict.fromkeys(reading.options)), names,
                        tuple(sorted(reading.sources.items())))


def read(path: Path, root: Path | None = None) -> Requirements:
    shown = _shown(path, root)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EnvError(f"cannot read {shown}: {exc.strerror}") from None
    if path.name == "pylock.toml" or (path.name.startswith("pylock.") and path.suffix == ".toml"):
        from mlproject.runner.envs.pylock import parse_pylock

        return parse_pylock(decode(data, shown), shown)
    return parse(decode(data, shown), path, root=root, shown=shown)
