"""The model registry, read from Git tags in GTO's grammar (see tags.py): which models there are,
their versions, and which version holds each stage now.

All tags are read with one `git for-each-ref` (GTO opens every tag object through dulwich, which
takes seconds at a few thousand tags, iterative/gto#156). The state follows GTO's rules, so that
`mlproject registry --json` and `gto show --json` agree:
- only annotated tags count (GTO drops lightweight ones);
- a version is active when its latest registration/deregistration tag is a registration;
- a stage tag applies to the version registered at the tagged commit (to the commit itself,
  named by its sha, when none is), and a stage is held by the active version whose latest
  assignment to it is the latest one that has not been unassigned since;
- a model is deprecated when its latest event (any of its tags, or a commit it versioned) is a
  deprecation: registering a version afterwards makes it active again;
- events are ordered by tag time (whole seconds, as Git stores it); within one second a
  cancellation (`!`) wins, as in GTO, and otherwise mlproject goes by the tags' counter where
  GTO's order is that of its internal lists (which version holds a stage assigned twice in one
  second).
"""
from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from mlproject.runner.gitops import tags
from mlproject.runner.util import proc

FORMAT = "mlproject.registry/1"
_FIELDS = ("%(refname:strip=2)", "%(objecttype)", "%(*objecttype)", "%(*objectname)",
           "%(taggerdate:unix)", "%(taggername)", "%(taggeremail)")


class RegistryError(Exception):
    """The registry cannot be read (not a Git repository, git failed); says what to do."""


@dataclass(frozen=True)
class TagRef:
    name: str
    commit: str
    time: int  # the tagger's time, seconds since the epoch
    author: str = ""
    email: str = ""
    message: str | None = None  # read only when asked for


def read_tags(root: str, *, model: str | None = None, messages: bool = False) -> list[TagRef]:
    """The repository's annotated tags on commits (one `git for-each-ref`)."""
    args = ["git", "for-each-ref"]
    if messages:  # a message may hold any character: Python literals, read back as such
        args += ["--python", f"--format=({', '.join((*_FIELDS, '%(contents)'))}),"]
    else:  # no field of these holds a NUL or a newline: split, which is faster
        args.append("--format=" + "%00".join(_FIELDS))
    if model is not None:  # model names hold no glob characters (tags.check_name)
        args += [f"refs/tags/{model}@*", f"refs/tags/{model}#*"]
    else:
        args.append("refs/tags")
    try:
        out = proc.run(args, cwd=root, timeout=600).stdout.decode("utf-8", "surrogateescape")
    except proc.ProcError as exc:
        raise RegistryError(f"cannot read the tags of {root}: {exc}") from None
    if messages:
        rows = ast.literal_eval("[" + out + "]") if out else []
    else:
        rows = [line.split("\0") for line in out.splitlines()]
    found = []
    for row in rows:
        name, kind, target_kind, target, when, who, email = row[:7]
        if kind != "tag" or target_kind != "commit" or not when:
            continue  # a lightweight tag, or one on a tree or a blob: not the registry's
        found.append(TagRef(name, target, int(when), who, email.strip("<>"),
                            row[7] if messages else None))
    return found


@dataclass(frozen=True)
class VersionState:
    version: str  # `vX.Y.Z`, or a commit's sha where a stage was assigned to no version
    commit: str
    tag: str  # the tag that made it (its registration, or its first stage assignment)
    created_at: int
    author: str
    registered: bool
    stages: tuple[str, ...] = ()  # the stages it holds now
    message: str | None = None

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "version": self.version, "commit": self.commit, "tag": self.tag,
            "created_at": _iso(self.created_at), "author": self.author,
            "registered": self.registered, "stages": list(self.stages)}
        if self.message is not None:
            found["payload"] = tags.payload_of(self.message)
        return found


@dataclass(frozen=True)
class ModelState:
    name: str
    latest: str | None  # the greatest active registered version
    deprecated: bool
    versions: tuple[VersionState, ...]  # active ones, greatest first (shas last)
    stages: Mapping[str, str] = field(default_factory=dict)  # stage -> version holding it

    def to_json(self) -> dict[str, Any]:
        return {"latest": self.latest, "deprecated": self.deprecated,
                "stages": dict(sorted(self.stages.items())),
                "versions": [v.to_json() for v in self.versions]}


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat()


@dataclass
class _Version:  # built while replaying the tags
    name: str
    commit: str
    direct: list[tuple[tuple[int, int], bool, TagRef]] = field(default_factory=list)
    stages: dict[str, list[tuple[tuple[int, int], bool, TagRef]]] = field(default_factory=dict)

    def registered(self) -> bool:
        return any(added for _, added, _ in self.direct)

    def active(self) -> bool:
        if self.direct:
            return max(self.direct, key=_latest)[1]
        return bool(self.stages)

    def held(self) -> dict[str, tuple[int, int]]:
        """Stage -> when it was last assigned, for the stages whose latest event assigns them."""
        held = {}
        for stage, events in self.stages.items():
            latest = max(events, key=_latest)
            if latest[1]:
                held[stage] = latest[0]
        return held

    def first(self) -> TagRef:
        """The tag that stands for it, as GTO's `ref`: its latest registration; for a commit
        with no version, its latest stage tag."""
        if self.direct:
            added = [e for e in self.direct if e[1]] or self.direct
        else:
            added = [e for evs in self.stages.values() for e in evs]
        return max(added, key=lambda e: e[0])[2]


def _latest(event: tuple[tuple[int, int], bool, TagRef]) -> tuple[int, bool, int]:
    """Which of a version's (or a version's stage's) events is the latest: by the second, and at
    one second a cancellation wins whatever the counters say, as in GTO; then by the counter."""
    (when, counter), added, _ = event
    return (when, not added, counter)


def _when(ref: TagRef, parsed: tags.Parsed) -> tuple[int, int]:
    return (ref.time, parsed.counter or 0)


def _version_key(name: str) -> tuple[int, Any]:
    try:
        return (1, tags.parse_version(name).key())
    except tags.TagError:
        return (0, name)  # a sha: after every semantic version, as GTO lists them


def model_state(name: str, refs: Sequence[tuple[TagRef, tags.Parsed]],
                commit_times: Mapping[str, int] | None = None) -> ModelState:
    """One model's state from its tags (in any order); `commit_times` (sha -> committer time)
    matter only to a model that has a deprecation tag."""
    versions: dict[tuple[str, str], _Version] = {}
    deprecations: list[tuple[int, int]] = []
    creations: list[tuple[int, int]] = []
    ordered = sorted(refs, key=lambda rp: _when(*rp))
    for ref, parsed in ordered:  # versions first, as GTO indexes them
        if parsed.action in (tags.Action.REGISTER, tags.Action.DEREGISTER):
            assert parsed.version is not None
            found = versions.setdefault((parsed.version, ref.commit), _Version(parsed.version, ref.commit))
            found.direct.append((_when(ref, parsed), parsed.action is tags.Action.REGISTER, ref))
        elif parsed.action is tags.Action.DEPRECATE:
            deprecations.append(_when(ref, parsed))
        elif parsed.action is tags.Action.CREATE:
            creations.append(_when(ref, parsed))
    by_commit: dict[str, list[_Version]] = {}
    for version in versions.values():
        by_commit.setdefault(version.commit, []).append(version)
    for ref, parsed in ordered:
        if parsed.action not in (tags.Action.ASSIGN, tags.Action.UNASSIGN):
            continue
        assert parsed.stage is not None
        at_commit = by_commit.get(ref.commit)
        if at_commit:
            target = max(at_commit, key=lambda v: _version_key(v.name))
        else:
            target = versions.setdefault((ref.commit, ref.commit), _Version(ref.commit, ref.commit))
        target.stages.setdefault(parsed.stage, []).append(
            (_when(ref, parsed), parsed.action is tags.Action.ASSIGN, ref))
    active = [v for v in versions.values() if v.active()]
    holders: dict[str, tuple[tuple[int, int], str]] = {}
    for version in active:
        for stage, when in version.held().items():
            if stage not in holders or when > holders[stage][0]:
                holders[stage] = (when, version.name)
    stages = {stage: held[1] for stage, held in holders.items()}
    listed = []
    for version in sorted(active, key=lambda v: _version_key(v.name), reverse=True):
        first = version.first()
        listed.append(VersionState(
            version.name, version.commit, first.name, first.time, first.author,
            version.registered(), tuple(sorted(s for s, v in stages.items() if v == version.name)),
            first.message))
    registered = [v for v in listed if v.registered]
    # the latest event decides deprecation, by the second: at one instant a version's event wins
    # over a deprecation, and that over a creation (GTO's order)
    events = [(w, 1) for w in deprecations] + [(w, 0) for w in creations]
    for version in versions.values():
        events += [(e[0], 2) for e in version.direct]
        events += [(e[0], 2) for evs in version.stages.values() for e in evs]
        if commit_times:  # GTO counts the commit as an event of the version too
            events.append(((commit_times.get(version.commit, 0), 0), 2))
    latest_event = max(events, key=lambda e: (e[0][0], e[1]))
    return ModelState(name, registered[0].version if registered else None, latest_event[1] == 1,
                      tuple(listed), stages)


def state(refs: Iterable[TagRef], commit_times: Mapping[str, int] | None = None
          ) -> dict[str, ModelState]:
    """Every model's state, by name, from the repository's tags (those not in the grammar are
    ignored)."""
    return {name: model_state(name, found, commit_times)
            for name, found in sorted(_by_model(refs).items())}


def _by_model(refs: Iterable[TagRef]) -> dict[str, list[tuple[TagRef, tags.Parsed]]]:
    by_model: dict[str, list[tuple[TagRef, tags.Parsed]]] = {}
    for ref in refs:
        parsed = tags.parse(ref.name)
        if parsed is not None:
            by_model.setdefault(parsed.model, []).append((ref, parsed))
    return by_model


def commit_times(root: str, commits: Iterable[str]) -> dict[str, int]:
    """Each commit's committer time (one `git log --no-walk`)."""
    wanted = sorted(set(commits))
    if not wanted:
        return {}
    try:
        out = proc.run(["git", "log", "--no-walk=unsorted", "--format=%H %ct", *wanted],
                       cwd=root, timeout=600).stdout.decode()
    except proc.ProcError as exc:
        raise RegistryError(f"cannot read the commits of {root}'s tags: {exc}") from None
    return {sha: int(when) for sha, _, when in (line.partition(" ") for line in out.splitlines())}


def load(root: str, model: str | None = None) -> dict[str, ModelState]:
    """The registry of the repository at `root` (one model's, with its tags' messages). One
    `git for-each-ref`; the commits' times too (one `git log`) where a model has a deprecation
    tag, which only the latest event overrides (a commit counts as one, as in GTO)."""
    if model is not None:
        tags.check_name(model, "model name")
    by_model = _by_model(read_tags(root, model=model, messages=model is not None))
    if model is not None:
        by_model = {model: by_model[model]} if model in by_model else {}
    deprecated = [found for found in by_model.values()
                  if any(p.action is tags.Action.DEPRECATE for _, p in found)]
    times = commit_times(root, (r.commit for found in deprecated for r, _ in found))
    return {name: model_state(name, found, times) for name, found in sorted(by_model.items())}


def to_json(models: Mapping[str, ModelState]) -> dict[str, Any]:
    return {"format": FORMAT, "models": {name: m.to_json() for name, m in models.items()}}
