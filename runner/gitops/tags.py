"""The registry's tag grammar, GTO's (iterative/gto), as pure functions.

    MODEL@vX.Y.Z          a version is registered at the tagged commit
    MODEL@vX.Y.Z!         ... deregistered
    MODEL#STAGE#N         the version at the tagged commit is assigned STAGE (N: a counter, one
    MODEL#STAGE!#N        ... unassigned                 sequence per model, so names never repeat)
    MODEL@deprecated#N    the model is deprecated
    MODEL@created         (GTO reads it; mlproject never writes it)

Names (models and stages) are GTO's: letters, digits, '-', '_', '/', starting and ending with a
letter or digit. That alphabet already keeps everything git would reject or misread out of a tag
name (a leading '-', '..', '@{', '.lock', spaces, control characters); '//' is the one sequence
it allows that git refuses, so it is refused here too. Versions are semantic versions (semver.org
2.0.0), written with a leading 'v' in tags.

A tag's message is a one-line summary, a blank line, then the payload: one JSON document
(sorted keys) that `payload_of` reads back.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

PAYLOAD_FORMAT = "mlproject.promotion/1"
_NAME = r"[a-zA-Z0-9](?:[a-zA-Z0-9\-/_]*[a-zA-Z0-9])?"
_NUM = r"(?:0|[1-9]\d*)"
_PRE_ID = r"(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
_SEMVER = (rf"(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
           rf"(?:-(?P<pre>{_PRE_ID}(?:\.{_PRE_ID})*))?(?:\+(?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?")
_NAME_RE = re.compile(f"^{_NAME}$")
_SEMVER_RE = re.compile(f"^v?{_SEMVER}$")
# GTO's artifact names may carry a directory, `dir/sub:name`, written `dir/sub=name` in tags
_ARTIFACT = rf"(?:[a-zA-Z0-9\-_./]+=)?{_NAME}"
_TAG_RE = re.compile(
    rf"^(?P<model>{_ARTIFACT})"
    rf"(?:(?:#(?P<stage>{_NAME})|@(?P<version>v{_SEMVER}))(?P<cancel>!?)"
    rf"|@(?:(?P<deprecated>deprecated)|(?P<created>created)))"
    rf"(?:#(?P<counter>[0-9]+))?$")

Bump = Literal["major", "minor", "patch"]


class TagError(ValueError):
    """A model name, stage name or version that cannot be written in a tag; says why."""


class Action(str, Enum):
    REGISTER = "register"
    DEREGISTER = "deregister"
    ASSIGN = "assign"
    UNASSIGN = "unassign"
    DEPRECATE = "deprecate"
    CREATE = "create"


def _pre_key(pre: str) -> tuple[tuple[int, int, str], ...]:
    # semver 11.4: numeric identifiers compare as numbers and sort before alphanumeric ones
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))


@dataclass(frozen=True, order=False)
class Version:
    major: int
    minor: int
    patch: int
    pre: str = ""  # prerelease, without the '-'
    build: str = ""  # build metadata, without the '+' (ignored when comparing, as semver says)

    def __str__(self) -> str:
        text = f"v{self.major}.{self.minor}.{self.patch}"
        text += f"-{self.pre}" if self.pre else ""
        return text + (f"+{self.build}" if self.build else "")

    def key(self) -> tuple[Any, ...]:
        """Semver precedence: a release sorts after its prereleases."""
        return (self.major, self.minor, self.patch, not self.pre, _pre_key(self.pre) if self.pre else ())

    def bumped(self, part: Bump) -> Version:
        if part == "major":
            return Version(self.major + 1, 0, 0)
        if part == "minor":
            return Version(self.major, self.minor + 1, 0)
        if self.pre:  # the release a prerelease leads to
            return Version(self.major, self.minor, self.patch)
        return Version(self.major, self.minor, self.patch + 1)


ZERO = Version(0, 0, 0)


def parse_version(text: str) -> Version:
    """`1.2.3` or `v1.2.3` (prerelease and build metadata allowed)."""
    match = _SEMVER_RE.match(text)
    if not match:
        raise TagError(f"version {text!r} is not a semantic version: write it as X.Y.Z, e.g. 1.2.0")
    return Version(int(match["major"]), int(match["minor"]), int(match["patch"]),
                   match["pre"] or "", match["build"] or "")


def check_name(value: str, what: str) -> str:
    """`value` itself when it can be a model or stage name in a tag, else TagError."""
    if not _NAME_RE.match(value) or "//" in value:
        raise TagError(
            f"{what} {value!r} cannot be written in a registry tag: use letters, digits, '-', '_' "
            f"and '/', starting and ending with a letter or a digit (no '//')")
    return value


def version_tag(model: str, version: Version, *, cancel: bool = False) -> str:
    return f"{check_name(model, 'model name')}@{version}{'!' if cancel else ''}"


def stage_tag(model: str, stage: str, counter: int, *, cancel: bool = False) -> str:
    check_name(model, "model name")
    check_name(stage, "stage name")
    return f"{model}#{stage}{'!' if cancel else ''}#{counter}"


def deprecation_tag(model: str, counter: int) -> str:
    return f"{check_name(model, 'model name')}@deprecated#{counter}"


@dataclass(frozen=True)
class Parsed:
    model: str
    action: Action
    version: str | None = None  # as written, with its 'v'
    stage: str | None = None
    counter: int | None = None


def parse(tag: str) -> Parsed | None:
    """What a tag says, or None for a tag that is not in the grammar (any other tag)."""
    match = _TAG_RE.match(tag)
    if not match:
        return None
    model = match["model"].replace("=", ":")
    counter = int(match["counter"]) if match["counter"] else None
    if match["version"]:
        action = Action.DEREGISTER if match["cancel"] else Action.REGISTER
        return Parsed(model, action, version=match["version"], counter=counter)
    if match["stage"]:
        action = Action.UNASSIGN if match["cancel"] else Action.ASSIGN
        return Parsed(model, action, stage=match["stage"], counter=counter)
    action = Action.DEPRECATE if match["deprecated"] else Action.CREATE
    return Parsed(model, action, counter=counter)


def next_counter(model: str, tags: Iterable[str]) -> int:
    """The N of the model's next `#N` tag: one more than the largest it has (GTO's rule)."""
    largest = 0
    for tag in tags:
        parsed = parse(tag)
        if parsed and parsed.model == model and parsed.counter is not None:
            largest = max(largest, parsed.counter)
    return largest + 1


def message(summary: str, payload: Mapping[str, Any]) -> str:
    """A tag message: the summary line, a blank line, the payload as sorted JSON."""
    line = " ".join(summary.split())
    body = json.dumps({"format": PAYLOAD_FORMAT, **payload}, sort_keys=True, indent=2,
                      ensure_ascii=False)
    return f"{line}\n\n{body}\n"


def payload_of(text: str) -> dict[str, Any] | None:
    """The payload a tag message carries, or None for a message mlproject did not write."""
    _, sep, body = text.partition("\n\n")
    if not sep:
        return None
    try:
        found = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(found, dict) or found.get("format") != PAYLOAD_FORMAT:
        return None
    return found
