"""A local conda channel for tests: tiny noarch packages written with tarfile in the .tar.bz2
format, indexed with py-rattler, and a conda-lock.yml (v1) that pins them by url and hash.

Only for tests that install conda environments without reaching any network."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import sys
import tarfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from mlproject.runner.envs import condalock


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    files: Mapping[str, str]  # path in the prefix -> text; under bin/ they are executable
    depends: tuple[str, ...] = ()
    build: str = "0"
    links: Mapping[str, str] = field(default_factory=dict)  # path in the prefix -> symlink target

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}-{self.build}.tar.bz2"


def hello(version: str = "1.0", text: str = "hello") -> Package:
    return Package("hello", version, {"share/hello/hello.txt": f"{text}\n",
                                      "bin/hello": f"#!/bin/sh\necho {text}\n"}, depends=("greeting",))


def greeting() -> Package:
    return Package("greeting", "2.0", {"share/greeting/greeting.txt": "hi\n"})


def python_shim() -> Package:
    """`bin/python`: this test run's base interpreter, made the prefix's own by a pyvenv.cfg
    (so uv installs into the prefix, as into a conda python)."""
    base = Path(getattr(sys, "_base_executable", sys.executable))
    return Package("pyshim", "1.0", {"pyvenv.cfg": f"home = {base.parent}\ninclude-system-site-packages = false\n"},
                   links={"bin/python": str(base)})


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tar.addfile(info, io.BytesIO(data))


def build_package(directory: Path, package: Package) -> Path:
    index = {"name": package.name, "version": package.version, "build": package.build, "build_number": 0,
             "depends": list(package.depends), "subdir": "noarch", "noarch": "generic", "license": "MIT",
             "timestamp": 0}
    payload = {path: text.encode() for path, text in package.files.items()}
    paths = [{"_path": path, "path_type": "hardlink", "sha256": hashlib.sha256(data).hexdigest(),
              "size_in_bytes": len(data)} for path, data in sorted(payload.items())]
    paths += [{"_path": path, "path_type": "softlink"} for path in sorted(package.links)]
    target = directory / "noarch" / package.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, "w:bz2") as tar:
        _add(tar, "info/index.json", json.dumps(index).encode())
        _add(tar, "info/paths.json", json.dumps({"paths": paths, "paths_version": 1}).encode())
        _add(tar, "info/files", "".join(f"{p}\n" for p in sorted([*payload, *package.links])).encode())
        for path, data in sorted(payload.items()):
            _add(tar, path, data, 0o755 if path.startswith("bin/") else 0o644)
        for path, link in sorted(package.links.items()):
            info = tarfile.TarInfo(path)
            info.type, info.linkname, info.mtime = tarfile.SYMTYPE, link, 0
            tar.addfile(info)
    return target


@dataclass(frozen=True)
class Channel:
    root: Path
    packages: Mapping[str, Package]  # by name

    @property
    def url(self) -> str:
        return self.root.as_uri()

    def archive(self, name: str) -> Path:
        return self.root / "noarch" / self.packages[name].filename


def make_channel(root: Path, packages: Iterable[Package]) -> Channel:
    from rattler.index import index_fs

    by_name = {p.name: p for p in packages}
    for package in by_name.values():
        build_package(root, package)
    asyncio.run(index_fs(root))
    return Channel(root, by_name)


def tamper(channel: Channel, name: str) -> None:
    """Replace a package, after it was locked, by a valid one with other contents."""
    package = channel.packages[name]
    build_package(channel.root, Package(package.name, package.version,
                                        {path: "tampered\n" for path in package.files},
                                        package.depends, package.build, package.links))


def build_wheel(directory: Path, name: str = "tinypip", version: str = "1.0") -> Path:
    files = {f"{name}/__init__.py": b"VALUE = 42\n",
             f"{name}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
             f"{name}-{version}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = f"{name}-{version}.dist-info/RECORD"
    lines = [f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}"
             for path, data in files.items()]
    files[record] = ("\n".join([*lines, f"{record},,"]) + "\n").encode()
    target = directory / f"{name}-{version}-py3-none-any.whl"
    directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)
    return target


def _hashes(path: Path) -> dict[str, str]:
    data = path.read_bytes()
    return {"md5": hashlib.md5(data).hexdigest(), "sha256": hashlib.sha256(data).hexdigest()}


def write_environment(path: Path, channel: Channel, pip: Iterable[str] = ()) -> Path:
    deps: list[object] = [f"{p.name}={p.version}" for p in channel.packages.values()]
    if pip:
        deps.append({"pip": list(pip)})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"name": "test", "channels": [channel.url], "dependencies": deps},
                                   sort_keys=False))
    return path


def write_lock(path: Path, channel: Channel, platform: str, env_file: Path | None = None,
               wheels: Iterable[Path] = (), stamp: bool = True) -> Path:
    """conda-lock.yml v1 for every package of the channel (noarch ones listed under
    `platform`, as conda-lock does) and pip packages from wheel files."""
    packages: list[dict[str, object]] = [
        {"name": p.name, "version": p.version, "manager": "conda", "platform": platform,
         "dependencies": {d.split()[0]: "" for d in p.depends}, "url": channel.archive(p.name).as_uri(),
         "hash": _hashes(channel.archive(p.name)), "category": "main", "optional": False}
        for p in channel.packages.values()]
    for wheel in wheels:
        name, version = wheel.name.split("-")[:2]
        packages.append({"name": name, "version": version, "manager": "pip", "platform": platform,
                         "dependencies": {}, "url": wheel.as_uri(),
                         "hash": {"sha256": _hashes(wheel)["sha256"]}, "category": "main", "optional": False})
    lock = {"version": 1,
            "metadata": {"content_hash": {platform: "0" * 64},
                         "channels": [{"url": channel.url, "used_env_vars": []}],
                         "platforms": [platform], "sources": [env_file.name if env_file else "environment.yml"]},
            "package": packages}
    path.write_text(yaml.safe_dump(lock, sort_keys=False))
    if stamp and env_file is not None:
        condalock.stamp(path, env_file)
    return path
