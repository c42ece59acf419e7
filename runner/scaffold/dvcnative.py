"""Track a file with DVC and push it to a local directory remote, natively, as DVC 3 does.

What `dvc init`, `dvc add FILE`, `dvc remote add -d NAME DIR` and `dvc push` would leave:
`.dvc/config` with the default remote, `.dvc/.gitignore`, `.dvcignore`, `FILE.dvc` with DVC 3's
`md5`, `size` and `hash: md5`, the file kept out of Git by a `.gitignore` beside it, and the
object in the cache and the remote under `files/md5/XX/REST`. DVC itself is an optional extra:
a new project must not need it.
"""
from __future__ import annotations

import hashlib
import posixpath

CONFIG_GITIGNORE = "/config.local\n/tmp\n/cache\n"
DVCIGNORE = ("# Add patterns of files dvc should ignore, which could improve\n"
             "# the performance. Learn more at\n"
             "# https://dvc.org/doc/user-guide/dvcignore\n")


def object_path(root: str, md5: str) -> str:
    """An object's place in a DVC 3 cache or remote ('/'-separated, under ROOT)."""
    return posixpath.join(root, "files", "md5", md5[:2], md5[2:])


def tracked(path: str, content: bytes, *, remote: str, remote_url: str,
            remote_dir: str) -> dict[str, bytes]:
    """The files (relative '/'-separated path -> bytes) that track PATH, holding CONTENT, with
    DVC and push it to REMOTE at REMOTE_URL (as written in `.dvc/config`, relative to `.dvc/`),
    which is REMOTE_DIR relative to the project. The data file itself is not among them."""
    md5 = hashlib.md5(content).hexdigest()
    directory, name = posixpath.split(path)
    dvcfile = f"outs:\n- md5: {md5}\n  size: {len(content)}\n  hash: md5\n  path: {name}\n"
    config = f"[core]\n    remote = {remote}\n['remote \"{remote}\"']\n    url = {remote_url}\n"
    return {
        ".dvc/config": config.encode(),
        ".dvc/.gitignore": CONFIG_GITIGNORE.encode(),
        ".dvcignore": DVCIGNORE.encode(),
        f"{path}.dvc": dvcfile.encode(),
        posixpath.join(directory, ".gitignore"): f"/{name}\n".encode(),
        object_path(".dvc/cache", md5): content,
        object_path(remote_dir, md5): content,
    }
