"""A project given as a Git URL (`mlproject run https://host/org/repo#sub -v REV`), as `mlflow
run` takes one: what is a URL, which ones are refused, the subdirectory after `#`, the key of its
clone in the cache, and the URL as it may be shown (credentials never are). Pure: no process."""
from __future__ import annotations

import hashlib
import posixpath
import re
import urllib.parse
from dataclasses import dataclass

from mlproject.runner.util.urls import redact as redact  # re-exported: callers ask here

# The transports Git may use for a project's URL: GIT_ALLOW_PROTOCOL's form (never ext::, fd::)
PROTOCOLS = ("https", "http", "ssh", "git", "file")
_SCP = re.compile(r"^(?P<user>[A-Za-z0-9._~+-]+)@(?P<host>[A-Za-z0-9.-]+):(?P<path>[^/].*|/.+)$")
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)(://|::)")
_SAID = "https://, http://, ssh://, git://, file:// or user@host:path"


class GitSourceError(Exception):
    """A Git URL that is refused, or that cannot be fetched or checked out (exit code 2)."""


@dataclass(frozen=True)
class GitUrl:
    url: str  # what Git is given, credentials included
    shown: str  # what may be shown and recorded: the same with credentials redacted
    subdirectory: str  # the project's directory inside the repository, '' for its root
    key: str  # the repository's canonical name (no credentials): what its clone is keyed by
    secrets: tuple[str, ...] = ()  # the parts of `url` never shown

    def scrub(self, text: str) -> str:
        """`text` (a message from Git) with every credential of the URL redacted."""
        text = text.replace(self.url, self.shown)
        for secret in self.secrets:
            text = text.replace(secret, "***")
            text = text.replace(urllib.parse.unquote(secret), "***")
        return text

    def cache_name(self) -> str:
        """A directory name for its clone: a readable slug and a digest of the key."""
        digest = hashlib.sha256(self.key.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        tail = re.sub(r"^[a-z+]+:/*", "", self.key).split("@", 1)[-1]
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", tail).strip("-.")[-48:].strip("-.")
        return f"{slug or 'repo'}-{digest}"


def looks_like_url(text: str) -> bool:
    """Whether PATH names a Git repository by URL rather than a local file or directory
    (a URL that is refused counts: it is refused, never read as a path)."""
    return bool(_SCHEME.match(text) or _SCP.match(text.split("#", 1)[0]))


def parse(text: str) -> GitUrl:
    """The URL and subdirectory of PATH; GitSourceError says why one is refused."""
    url, _, sub = text.partition("#")
    if url.startswith("-"):
        raise GitSourceError(f"not a Git URL: {redact(url)!r} looks like an option")
    scp = _SCP.match(url)
    if scp:
        user, host, path = scp["user"], scp["host"], scp["path"]
        if host.startswith("-") or user.startswith("-"):
            raise GitSourceError(f"not a Git URL: {redact(url)!r}: a host may not start with '-'")
        return GitUrl(url, url, _subdirectory(sub), f"ssh://{user}@{host.lower()}/{_bare(path)}")
    scheme = _SCHEME.match(url)
    if not scheme or scheme[2] != "://" or scheme["scheme"].lower() not in PROTOCOLS:
        raise GitSourceError(f"{redact(url)!r}: not a Git URL mlproject fetches (it takes {_SAID})")
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if host.startswith("-"):
        raise GitSourceError(f"not a Git URL: {redact(url)!r}: a host may not start with '-'")
    if parts.scheme.lower() == "file" and host not in ("", "localhost"):
        raise GitSourceError(f"{redact(url)!r}: a file:// URL names a path on this machine "
                             "(file:///path/to/repo)")
    if not parts.path.strip("/"):
        raise GitSourceError(f"{redact(url)!r}: no repository in the URL")
    secrets, shown_user = _credentials(parts)
    netloc = (f"{shown_user}@" if shown_user else "") + parts.netloc.rpartition("@")[2]
    shown = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    key_user = "" if parts.scheme.lower() in ("http", "https") else (parts.username or "")
    key_netloc = (f"{key_user}@" if key_user else "") + host.lower() + (
        f":{parts.port}" if parts.port else "")
    key = f"{parts.scheme.lower()}://{key_netloc}/{_bare(parts.path)}"
    return GitUrl(url, shown, _subdirectory(sub), key, secrets)


def _credentials(parts: urllib.parse.SplitResult) -> tuple[tuple[str, ...], str]:
    """The secrets of the URL's user part, and what of it may be shown. Over HTTP a lone user
    name is a token as often as a name (https://TOKEN@host): all of it is redacted."""
    info = parts.netloc.rpartition("@")[0]
    if not info:
        return (), ""
    user, colon, password = info.partition(":")
    if parts.scheme.lower() in ("http", "https"):
        return tuple(s for s in (info, user, password) if s), "***"
    return ((password,) if password else ()), user + (":***" if colon else "")


def _bare(path: str) -> str:
    return path.strip("/").removesuffix(".git").rstrip("/")


def _subdirectory(sub: str) -> str:
    """`#sub/dir` made relative and normal; one that leaves the repository is refused (a link
    that leads out is refused once checked out: checkout.project_dir)."""
    if not sub:
        return ""
    if sub.startswith("/") or "\\" in sub or "\0" in sub:
        raise GitSourceError(f"subdirectory {sub!r}: give a directory inside the repository, "
                             "relative to its root")
    if ".." in sub.split("/"):
        raise GitSourceError(f"subdirectory {sub!r}: leaves the repository")
    normal = posixpath.normpath(sub)
    return "" if normal == "." else normal
