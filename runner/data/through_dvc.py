"""Data on a remote that only DVC's API reaches (S3, GCS, Azure, SSH, HTTP...): fetched through
`dvc.api.DVCFileSystem`, imported here and only then, and verified as natively fetched data is.
DVC is an extra (`mlproject[dvc]`): where it or its plugin is missing, the error says what to
install."""
from __future__ import annotations

import os
import posixpath
from typing import IO, Any

from mlproject.runner.data.pins import DataError, DataPin
from mlproject.runner.data.pull import copy_hashed
from mlproject.runner.util import extras
from mlproject.runner.util.hashing import dir_md5


class NeedsDVC(DataError, extras.MissingExtra):
    """The data is on a remote that only DVC's API reaches, and DVC (or its plugin) is absent."""


# A remote's URL scheme -> the DVC extra with its plugin and the plugin's module; http(s) is
# in DVC itself.
_PLUGINS = {"s3": ("s3", "dvc_s3"), "gs": ("gs", "dvc_gs"), "azure": ("azure", "dvc_azure"),
            "gdrive": ("gdrive", "dvc_gdrive"), "ssh": ("ssh", "dvc_ssh"),
            "hdfs": ("hdfs", "dvc_hdfs"), "webhdfs": ("webhdfs", "dvc_webhdfs"),
            "oss": ("oss", "dvc_oss"), "webdav": ("webdav", "dvc_webdav"),
            "webdavs": ("webdav", "dvc_webdav")}


def needs_dvc(pin: DataPin, remote: tuple[str, str]) -> NeedsDVC | None:
    """What is missing to reach `remote` through DVC: DVC itself, its plugin for the scheme."""
    name, url = remote
    extra, module = _PLUGINS.get(url.split("://", 1)[0].lower(), ("", ""))
    has_dvc = extras.has_extra("dvc")
    plugin = [f"dvc[{extra}]"] if extra and not (has_dvc and extras.importable(module)) else []
    if has_dvc and not plugin:
        return None
    where = f"remote {name!r} ({url})" if name else "its remote"
    if has_dvc:  # only the plugin is missing
        return NeedsDVC(f"data.{pin.name}: {where} needs DVC's {extra} plugin: "
                        f"pip install '{plugin[0]}'")
    return NeedsDVC(f"data.{pin.name}: {where} needs DVC: {extras.install_line('dvc', *plugin)}")


def copy_through_dvc(pin: DataPin, repo: str, path: str, stage: str,
              remote: tuple[str, str] = ("", "")) -> None:
    """Through DVC's public API, for remotes that are not a local directory, verified the same."""
    missing = needs_dvc(pin, remote)
    if missing is not None:
        raise missing
    try:
        from dvc.api import DVCFileSystem  # type: ignore[import-untyped,unused-ignore]
    except ImportError:  # found but broken: say so rather than fail inside DVC
        raise NeedsDVC(f"data.{pin.name}: DVC is installed but cannot be imported; reinstall it: "
                       f"{extras.install_line('dvc')}") from None
    try:
        fs = DVCFileSystem(repo, rev=pin.sha)
        entries: dict[str, Any] = fs.find(path, detail=True) if pin.isdir else {path: {"md5": pin.md5}}
        listing = []
        for name, info in entries.items():
            rel = posixpath.relpath(name, path) if pin.isdir else ""
            expected = str(info.get("md5") or (info.get("dvc_info") or {}).get("md5"))
            with fs.open(name, "rb") as handle:
                reader: IO[bytes] = handle
                got = copy_hashed(reader.read, os.path.join(stage, *rel.split("/")) if rel else stage,
                            pin.kind)
            if got != expected:
                raise DataError(f"data.{pin.name}: {pin.local}/{rel} from the remote is corrupted: "
                                f"expected md5 {expected}, got {got}; nothing was changed")
            listing.append((rel, got))
    except DataError:
        raise
    except Exception as exc:  # DVC raises many types: the remote's, the network's, its own
        raise DataError(f"data.{pin.name}: DVC could not fetch {path} at {pin.sha[:12]} from "
                        f"{repo}: {exc}") from None
    if pin.isdir and dir_md5(listing) != pin.md5:
        raise DataError(f"data.{pin.name}: what DVC fetched for {pin.local} hashes to "
                        f"{dir_md5(listing)}, not {pin.md5}; nothing was changed")
