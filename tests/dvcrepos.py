"""Real DVC repositories for the data tests, built with the `dvc` CLI once per session.

`build(base)` lays out, side by side (remote URLs are relative, so a copy of `base` works):

    base/main            the project: data/train.csv and images/ (nested, unicode names) at tags
                         v1 and v2, a dvc.yaml stage with a wdir (pipe/work/model.bin in
                         dvc.lock), `imported` (a `dvc import` of source's ds/), and hand-written
                         DVC 2 files (legacy/notes.txt, legacy_dir) with CRLF text
    base/remote          main's default remote, a local directory (`../../remote`)
    base/source          a second repository: ds/ at tags v1 and v2
    base/source-remote   its remote
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

TRAIN_V1 = b"a,b\n1,2\n"
TRAIN_V2 = b"a,b\n1,2\n3,4\n"
IMAGES_V1 = {
    "README.md": b"# images\n",
    "cats/k\u00e4tzchen 1.png": bytes(range(256)) * 4,
    "dogs/deep/nested/\u00fc.txt": b"nested\n",
    "\u65e5\u672c/\u540d\u524d.bin": b"\x00\x01\x02 unicode dir\n",
}
IMAGES_V2 = {**IMAGES_V1, "cats/new.png": b"\x89PNG v2\n"}
SOURCE_V1 = {"one.txt": b"one\n", "sub/two.txt": b"two\n"}
SOURCE_V2 = {**SOURCE_V1, "one.txt": b"one, changed\n"}
LEGACY_TEXT = b"line one\r\nline two\r\n"  # DVC 2 hashed this as if it had LF endings
LEGACY_DIR = {"notes.txt": b"x\r\ny\r\n", "blob.bin": b"\x00\r\n\x00binary\r\n"}
PIPELINE = """\
stages:
  build:
    wdir: work
    cmd: echo model v1 > model.bin
    outs:
    - model.bin
"""


def dvc_command() -> list[str]:
    script = Path(sys.executable).parent / "dvc"
    return [str(script)] if script.exists() else [sys.executable, "-m", "dvc"]


def isolated_env(home: Path) -> dict[str, str]:
    """DVC and Git with no user or site configuration, analytics off."""
    home.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(home / "site"),
            "DVC_GLOBAL_CONFIG_DIR": str(home / "global"),
            "DVC_SYSTEM_CONFIG_DIR": str(home / "system"),
            "GIT_CONFIG_GLOBAL": str(home / "gitconfig"), "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
            "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com"}


def run(cwd: Path, env: dict[str, str], *args: str) -> str:
    command = dvc_command() + list(args[1:]) if args[0] == "dvc" else list(args)
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise AssertionError(f"{command} failed in {cwd}:\n{done.stdout}{done.stderr}")
    return done.stdout


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    if root.exists():
        shutil.rmtree(root)
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def md5_dvc2(data: bytes) -> str:
    """DVC 2's md5 (dvc/utils `file_md5`): a file whose first 512 bytes look like text has CRLF
    replaced by LF, one 1 MiB read at a time. Written out here, independently of the runner."""
    head = data[:512]
    text = not head or (b"\0" not in head and
                        len(head.translate(None, bytes(range(32, 127)) + b"\n\r\t\f\b"))
                        / len(head) <= 0.30)
    digest = hashlib.md5()
    for start in range(0, len(data), 1 << 20):
        chunk = data[start:start + (1 << 20)]
        digest.update(chunk.replace(b"\r\n", b"\n") if text else chunk)
    return digest.hexdigest()


def _put_legacy(stores: list[Path], md5: str, data: bytes) -> None:
    for store in stores:  # DVC 2's layout: <2 chars>/<rest>, no files/md5/
        path = store / md5[:2] / md5[2:]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def add_dvc2_files(main: Path, remote: Path) -> dict[str, str]:
    """Hand-written DVC 2 `.dvc` files (no `hash:` field), their objects in the legacy layout of
    the cache and the remote; returns path -> md5."""
    stores = [main / ".dvc" / "cache", remote]
    (main / "legacy").mkdir()
    (main / "legacy" / "notes.txt").write_bytes(LEGACY_TEXT)
    notes = md5_dvc2(LEGACY_TEXT)
    _put_legacy(stores, notes, LEGACY_TEXT)
    (main / "legacy" / "notes.txt.dvc").write_text(
        f"outs:\n- md5: {notes}\n  size: {len(LEGACY_TEXT)}\n  path: notes.txt\n")
    (main / "legacy" / ".gitignore").write_text("/notes.txt\n")
    write_tree(main / "legacy_dir", LEGACY_DIR)
    listing = []
    for rel, data in sorted(LEGACY_DIR.items()):
        listing.append({"md5": md5_dvc2(data), "relpath": rel})
        _put_legacy(stores, listing[-1]["md5"], data)
    body = json.dumps(listing, sort_keys=True).encode()
    tree = md5_dvc2(body) + ".dir"
    _put_legacy(stores, tree, body)
    size = sum(map(len, LEGACY_DIR.values()))
    (main / "legacy_dir.dvc").write_text(
        f"outs:\n- md5: {tree}\n  size: {size}\n  nfiles: {len(LEGACY_DIR)}\n  path: legacy_dir\n")
    with open(main / ".gitignore", "a") as ignore:
        ignore.write("/legacy_dir\n")
    return {"legacy/notes.txt": notes, "legacy_dir": tree}


@dataclass(frozen=True)
class Repos:
    base: Path
    env: dict[str, str]

    @property
    def main(self) -> Path:
        return self.base / "main"

    @property
    def remote(self) -> Path:
        return self.base / "remote"

    @property
    def source(self) -> Path:
        return self.base / "source"

    @property
    def source_remote(self) -> Path:
        return self.base / "source-remote"

    def dvc(self, cwd: Path, *args: str) -> str:
        return run(cwd, self.env, "dvc", *args)

    def git(self, cwd: Path, *args: str) -> str:
        return run(cwd, self.env, "git", *args)

    def copy(self, dest: Path) -> Repos:
        shutil.copytree(self.base, dest, symlinks=True)
        return Repos(dest, self.env)

    def clone(self, name: str = "clone") -> Path:
        """A fresh clone of main beside it: no DVC cache, no data, the same relative remote."""
        self.git(self.base, "clone", "-q", "main", name)
        return self.base / name


def _source(repos: Repos) -> None:
    src = repos.source
    src.mkdir()
    repos.git(src, "init", "-q", "-b", "main")
    repos.dvc(src, "init", "-q")
    repos.dvc(src, "remote", "add", "-d", "store", "../source-remote")
    for tag, files in (("v1", SOURCE_V1), ("v2", SOURCE_V2)):
        write_tree(src / "ds", files)
        repos.dvc(src, "add", "-q", "ds")
        repos.dvc(src, "push", "-q")
        repos.git(src, "add", "-A")
        repos.git(src, "commit", "-q", "-m", tag)
        repos.git(src, "tag", tag)


def build(base: Path) -> Repos:
    repos = Repos(base, isolated_env(base.parent / f"{base.name}-home"))
    base.mkdir(parents=True)
    _source(repos)
    main = repos.main
    main.mkdir()
    repos.git(main, "init", "-q", "-b", "main")
    repos.dvc(main, "init", "-q")
    repos.dvc(main, "remote", "add", "-d", "store", "../remote")  # stored as ../../remote
    for tag, train, images in (("v1", TRAIN_V1, IMAGES_V1), ("v2", TRAIN_V2, IMAGES_V2)):
        (main / "data").mkdir(exist_ok=True)
        (main / "data" / "train.csv").write_bytes(train)
        write_tree(main / "images", images)
        repos.dvc(main, "add", "-q", "data/train.csv", "images")
        if tag == "v2":
            (main / "pipe" / "work").mkdir(parents=True)
            (main / "pipe" / "dvc.yaml").write_text(PIPELINE)
            repos.dvc(main, "repro", "-q", "pipe/dvc.yaml")
            repos.dvc(main, "import", "-q", "../source", "ds", "-o", "imported", "--rev", "v1")
            add_dvc2_files(main, repos.remote)
        repos.dvc(main, "push", "-q")  # imported data stays out: it is in source-remote
        repos.git(main, "add", "-A")
        repos.git(main, "commit", "-q", "-m", tag)
        repos.git(main, "tag", tag)
    return repos
