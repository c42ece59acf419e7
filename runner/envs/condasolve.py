"""A conda environment file solved with py-rattler, where its channels can be reached: no conda
program and no conda-lock. The solution is written as conda-lock.yml (v1, what condalock reads)
beside the file, stamped as `mlproject lock` stamps one, and installed from it as any lock is.

Reachable: each channel's `noarch/repodata.json` is there (a file:// channel or a path) or
answers a HEAD request within TIMEOUT seconds. Here a name that does not resolve fails in
~0.05 s; a filtered network would take the whole timeout, once per process and channel (the
answers are kept in memory only: a channel down now may be up on the next run).

Only the conda packages are solved: a `pip:` section would need the solved python to resolve
against, so such a file is refused here, named, and goes to conda-lock (`mlproject lock` where
conda is).
"""
from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from mlproject.runner.envs import condalock
from mlproject.runner.envs.base import INPUT_MARK, EnvError, Log
from mlproject.runner.util.files import write_atomic

TIMEOUT = 5.0
DEFAULT_CHANNEL = "conda-forge"  # conda's `defaults` are Anaconda's, under their terms
_ANSWERS: dict[str, str | None] = {}


def channel_url(channel: str) -> str:
    if "://" in channel:
        return channel.rstrip("/")
    if channel.startswith(("/", ".", "~")):
        return Path(channel).expanduser().resolve().as_uri()
    if channel == "defaults":
        return "https://repo.anaconda.com/pkgs/main"
    return f"https://conda.anaconda.org/{channel}"


def channels(env_file: Path) -> list[str]:
    data = _spec(env_file)
    listed = data.get("channels") or [DEFAULT_CHANNEL]
    if not isinstance(listed, list) or not all(isinstance(c, str) and c.strip() for c in listed):
        raise EnvError(f"{env_file.name}: channels: expected a list of names or urls")
    return [c.strip() for c in listed]


def _probe(url: str) -> str | None:
    """Why the channel at `url` cannot be reached, or None."""
    index = f"{url}/noarch/repodata.json"
    parsed = urllib.parse.urlparse(index)
    if parsed.scheme == "file":
        return None if Path(urllib.request.url2pathname(parsed.path)).is_file() else "no repodata.json"
    if parsed.scheme not in ("http", "https"):
        return f"a {parsed.scheme}: channel"
    if url not in _ANSWERS:
        try:
            with urllib.request.urlopen(urllib.request.Request(index, method="HEAD"), timeout=TIMEOUT):
                _ANSWERS[url] = None
        except urllib.error.HTTPError as exc:
            _ANSWERS[url] = f"HTTP {exc.code}"
        except (OSError, ValueError) as exc:
            _ANSWERS[url] = str(getattr(exc, "reason", exc))[:120]
    return _ANSWERS[url]


def unreachable(env_file: Path) -> str | None:
    """Why py-rattler cannot solve the file here (a channel not reached), or None."""
    try:
        named = channels(env_file)
    except EnvError as exc:
        return str(exc)
    for channel in named:
        why = _probe(channel_url(channel))
        if why is not None:
            return f"channel {channel} cannot be reached ({why})"
    return None


def _spec(env_file: Path) -> dict[str, Any]:
    return condalock._spec(env_file)


def solve(env_file: Path, lock_file: Path, shown: str, log: Log) -> Path:
    """Solve `env_file` for this platform and write `lock_file`; EnvError if it cannot be."""
    import asyncio
    import tempfile

    import rattler
    import yaml

    data = _spec(env_file)
    deps = data.get("dependencies") or []
    if not isinstance(deps, list):
        raise EnvError(f"{shown}: dependencies: expected a list")
    if any(isinstance(d, dict) for d in deps):
        raise EnvError(f"{shown} has a pip: section, which py-rattler does not solve: lock it with "
                       "conda-lock where conda is (`mlproject lock`)")
    if not all(isinstance(d, str) and d.strip() for d in deps):
        raise EnvError(f"{shown}: dependencies: expected match specs (text) and a pip: list")
    specs = [str(d).strip() for d in deps]
    urls = [channel_url(c) for c in channels(env_file)]
    platform = condalock.current_platform()
    log(f"solving {shown} with py-rattler for {platform} from {', '.join(urls)}")
    with tempfile.TemporaryDirectory(prefix="mlproject-rattler-") as cache:
        async def run() -> list[Any]:
            return list(await rattler.solve(
                urls, specs, gateway=rattler.Gateway(cache_dir=Path(cache)),
                platforms=[rattler.Subdir(platform), rattler.Subdir("noarch")],
                virtual_packages=rattler.VirtualPackage.detect()))
        try:
            records = asyncio.run(run())
        except Exception as exc:  # py-rattler's errors have no common base class to name
            raise EnvError(f"py-rattler could not solve {shown}: {str(exc)[:2000]}") from None
    digest = condalock.input_digest(env_file)
    packages = [{"name": r.name.normalized, "version": str(r.version), "manager": "conda",
                 "platform": platform, "dependencies": dict(_split(d) for d in r.depends),
                 "url": str(r.url),
                 "hash": {k: v for k, v in (("md5", r.md5.hex() if r.md5 else None),
                                            ("sha256", r.sha256.hex() if r.sha256 else None)) if v},
                 "category": "main", "optional": False}
                for r in sorted(records, key=lambda r: r.name.normalized)]
    lock = {"version": 1,
            "metadata": {"content_hash": {platform: digest},
                         "channels": [{"url": u, "used_env_vars": []} for u in urls],
                         "platforms": [platform], "sources": [env_file.name]},
            "package": packages}
    write_atomic(lock_file, f"{INPUT_MARK}{digest}\n"
                 + yaml.safe_dump(lock, sort_keys=False))
    log(f"wrote {lock_file.name}: {len(packages)} conda packages, solved by py-rattler")
    return lock_file


def _split(depend: str) -> tuple[str, str]:
    name, _, spec = depend.strip().partition(" ")
    return name, spec.strip()
