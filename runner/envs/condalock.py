"""conda-lock.yml (format v1): its packages for one platform, whether it still matches its
environment.yml, and each package fetched and checked against the lock's hash.

Staleness. conda-lock's own `metadata.content_hash` cannot be recomputed here: it hashes
conda-lock's parsed model of the spec together with its default virtual packages, and both
change between conda-lock versions. So `mlproject lock` stamps the lock with a comment line,
`# mlproject-input: sha256 <digest>`, the digest being `canonical_digest` of the
environment.yml's channels (in order), its dependencies and pip dependencies (whitespace
collapsed, sorted) and its platforms (sorted); the file's name, comments and layout do not count.
Readers of the lock ignore comments. A lock without the stamp (written by conda-lock directly)
is checked more weakly: every dependency named in environment.yml must have a package in it.
"""
from __future__ import annotations

import hashlib
import os
import platform as _platform
import re
import shutil
import sys
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlproject.runner.envs.base import INPUT_MARK, EnvError, normalize
from mlproject.runner.util.files import write_atomic
from mlproject.runner.util.hashing import canonical_digest

_CHUNK = 1 << 20
_ARCHIVE = re.compile(r"(\.tar\.bz2|\.conda)$")
# a package name followed by a version or the end; urls, paths and options have no name to check
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9_.\-]*)\s*(?:$|[\[=<>!~;@ ,*])")


@dataclass(frozen=True)
class Locked:
    name: str
    version: str
    url: str
    sha256: str | None
    md5: str | None

    @property
    def hash(self) -> str:
        return f"sha256:{self.sha256}" if self.sha256 else f"md5:{self.md5}"

    @property
    def filename(self) -> str:
        return urllib.parse.unquote(self.url.rstrip("/").rsplit("/", 1)[-1])

    @property
    def record(self) -> str | None:
        """The conda-meta/ record an install leaves (`name-version-build.json`), when the
        file name says the build."""
        stem = _ARCHIVE.sub("", self.filename)
        return f"{stem}.json" if stem != self.filename and stem.startswith(f"{self.name}-") else None


@dataclass(frozen=True)
class Lock:
    platform: str
    conda: tuple[Locked, ...]
    pip: tuple[Locked, ...]
    stamp: str | None  # the input digest `mlproject lock` wrote, if it wrote one


def current_platform() -> str:
    machine = _platform.machine().lower()
    arm = machine in ("arm64", "aarch64")
    if sys.platform.startswith("linux"):
        return "linux-aarch64" if arm else "linux-ppc64le" if machine == "ppc64le" else "linux-64"
    if sys.platform == "darwin":
        return "osx-arm64" if arm else "osx-64"
    if sys.platform == "win32":
        return "win-arm64" if arm else "win-64"
    raise EnvError(f"conda environments are not supported on {sys.platform} {machine}")


def _yaml(path: Path, what: str) -> tuple[str, Any]:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
        return text, yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except OSError as exc:
        raise EnvError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise EnvError(f"{path} is not valid YAML ({what}): {exc}") from None


def read_lock(path: Path, platform: str) -> Lock:
    text, data = _yaml(path, "a conda-lock.yml")
    if not isinstance(data, dict) or data.get("version") != 1 or not isinstance(data.get("package"), list):
        raise EnvError(f"{path} is not a conda-lock file of version 1 (version: 1, metadata, package)")
    locked = [p for p in data["package"] if isinstance(p, dict) and p.get("platform") == platform]
    if not locked:
        metadata = data.get("metadata")
        platforms = (metadata.get("platforms") if isinstance(metadata, dict) else None) or []
        raise EnvError(f"{path} has no packages for {platform} (it was locked for "
                       f"{', '.join(map(str, platforms)) or 'no platform'}): "
                       f"run mlproject lock on {platform}")
    conda: dict[str, Locked] = {}
    pip: dict[str, Locked] = {}
    for raw in locked:
        if raw.get("optional") and raw.get("category") not in ("main", "dev"):
            continue  # an extra that conda-lock installs only when asked for it
        package = _package(path, raw)
        (pip if raw.get("manager") == "pip" else conda)[package.url] = package
    stamp = next((line[len(INPUT_MARK):].strip() for line in text.splitlines()
                  if line.startswith(INPUT_MARK)), None)
    return Lock(platform, tuple(conda.values()), tuple(pip.values()), stamp)


def _package(path: Path, raw: dict[str, Any]) -> Locked:
    hashes = raw.get("hash")
    if not isinstance(hashes, dict):
        hashes = {}
    name, url = str(raw.get("name", "")), str(raw.get("url", ""))
    if not name or not url or not (hashes.get("sha256") or hashes.get("md5")):
        raise EnvError(f"{path}: package {name or '?'} needs a name, a url and a sha256 or md5 hash")
    return Locked(name, str(raw.get("version", "")), url,
                  str(hashes["sha256"]).lower() if hashes.get("sha256") else None,
                  str(hashes["md5"]).lower() if hashes.get("md5") else None)


def _spec(path: Path) -> dict[str, Any]:
    _, data = _yaml(path, "a conda environment file")
    if not isinstance(data, dict):
        raise EnvError(f"{path}: expected a mapping with channels and dependencies")
    return data


def _normal(value: object) -> str:
    return " ".join(str(value).split())


def input_digest(env_file: Path) -> str:
    """The digest of what environment.yml asks for; see the module's docstring."""
    data = _spec(env_file)
    conda: list[str] = []
    pip: list[str] = []
    for dep in data.get("dependencies") or []:
        if isinstance(dep, dict):
            pip.extend(_normal(item) for item in dep.get("pip") or [])
        else:
            conda.append(_normal(dep))
    return canonical_digest({"channels": [_normal(c) for c in data.get("channels") or []],
                             "dependencies": sorted(conda), "pip": sorted(pip),
                             "platforms": sorted(_platforms(data))})


def _platforms(data: dict[str, Any]) -> list[str]:
    return [_normal(p) for p in data.get("platforms") or []]


def declared_platforms(env_file: Path) -> list[str]:
    """The platforms environment.yml asks conda-lock for (its `platforms:`), if any."""
    return _platforms(_spec(env_file))


def stamp(lock_file: Path, env_file: Path) -> None:
    """Record in the lock the digest of the environment.yml it was locked from."""
    text = lock_file.read_text(encoding="utf-8")
    kept = "".join(line for line in text.splitlines(keepends=True) if not line.startswith(INPUT_MARK))
    write_atomic(lock_file, f"{INPUT_MARK}{input_digest(env_file)}\n{kept}")


def staleness(lock: Lock, lock_name: str, env_file: Path, env_name: str) -> str | None:
    """A warning when the lock no longer matches its environment.yml, or None."""
    if lock.stamp is not None:
        if lock.stamp == input_digest(env_file):
            return None
        return f"{lock_name} was locked from a different {env_name}: run mlproject lock"
    data = _spec(env_file)
    wanted: list[str] = []
    for dep in data.get("dependencies") or []:
        if isinstance(dep, dict):
            items = [str(item) for item in dep.get("pip") or []]
        else:
            items = [str(dep).split("::")[-1]]  # a channel-qualified spec: channel::name
        wanted.extend(m.group(1) for m in map(_NAME.match, items) if m)
    have = {normalize(p.name) for p in lock.conda + lock.pip}
    missing = sorted({w for w in wanted if normalize(w) not in have})
    if missing:
        return (f"{lock_name} does not match {env_name}: no locked package for "
                f"{', '.join(missing)}: run mlproject lock")
    return None


def fetch_checked(package: Locked, archives: Path) -> Path:
    """A local file with the package's exact bytes, checked against the lock's hash.

    A file:// url or a plain path is read where it is; anything else is downloaded into
    `archives` (the only network access, and only because the lock names the url)."""
    parsed = urllib.parse.urlparse(package.url)
    if parsed.scheme == "file":
        local = Path(urllib.request.url2pathname(parsed.path))
    elif not parsed.scheme:
        local = Path(package.url).resolve()
    else:
        # by hash, under the file's own name (a wheel's name is part of its meaning)
        local = archives / package.hash.split(":", 1)[1][:32] / package.filename
        if local.exists():
            try:
                verify(package, local)
                return local
            except EnvError:
                local.unlink()  # a damaged copy: fetch it again rather than fail for ever
        _download(package, local)
        return local
    verify(package, local)
    return local


def _download(package: Locked, target: Path) -> None:
    """Download to a temporary file, check it, and only then publish it under `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(package.url, timeout=60) as answer:
                shutil.copyfileobj(answer, out, _CHUNK)
        except (OSError, ValueError) as exc:
            raise EnvError(f"cannot download {package.name} {package.version} "
                           f"from {package.url}: {exc}") from None
        verify(package, Path(tmp))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def verify(package: Locked, path: Path) -> None:
    sha256, md5 = hashlib.sha256(), hashlib.md5()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                sha256.update(chunk)
                md5.update(chunk)
    except OSError as exc:
        raise EnvError(f"cannot read {package.name} {package.version} at {path}: {exc.strerror}") from None
    algorithm, expected = package.hash.split(":", 1)
    found = (sha256 if algorithm == "sha256" else md5).hexdigest()
    if found != expected:
        raise EnvError(f"package {package.name} {package.version} ({package.url}) does not match the lock: "
                       f"{algorithm} expected {expected}, found {found}; nothing was installed")
