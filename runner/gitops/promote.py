"""Promotion: the checks before a model version is tagged, and the tags themselves.

A new version is checked against the working tree, which must be the commit tagged: a clean
tree (outputs, metrics files and `.mlproject/` aside: they are results), a lock at that commit
whose entry for the model's entry point is current (what `mlproject status` computes), the
model's file as that entry says it was written, the gates of the model's pipeline passed (the
base being the lock at the previous version's tag), and a version greater than every one
registered. Each failed check is a reason; `--force` tags anyway and the payload lists what was
overridden. Some things `--force` never does: move an existing tag (clones keep the old one),
or register a second version at a commit that has one (GTO cannot read that back).

Assigning a stage to a version that exists checks only that the version is active: it was
checked when it was registered, and the stage tag carries the lock entry of its commit.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mlproject.runner.gitops import gates, lockfile, registry, tags
from mlproject.runner.gitops.lockfile import Lock, LockEntry
from mlproject.runner.util import proc
from mlproject.spec import Spec
from mlproject.spec.model import Model


class PromoteError(Exception):
    """The request cannot be carried out at all (unknown model or revision, a name or version
    that cannot be a tag, an existing tag); exit 2. Refusals a check makes are `Refused`."""


class Refused(Exception):
    """Checks that failed (each a reason); `--force` goes past them."""

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons = list(reasons)
        super().__init__("; ".join(reasons))


@dataclass(frozen=True)
class Request:
    model: str
    version: str | None = None
    bump: tags.Bump | None = None
    stage: str | None = None
    ref: str = "HEAD"
    force: bool = False


@dataclass(frozen=True)
class NewTag:
    name: str
    message: str


@dataclass(frozen=True)
class Promotion:
    model: str
    version: str
    commit: str
    tags: tuple[NewTag, ...]  # in the order they are created
    overridden: tuple[str, ...] = ()  # reasons --force went past
    notes: tuple[str, ...] = ()


# `Staleness(spec, entry_point) -> reasons`: the plan and status machinery, given by the CLI
# (it reports its own errors); None: staleness not checked (it is then a reason of its own)
Staleness = Callable[[Spec, str], list[str]]


def resolve_commit(root: str, ref: str) -> str:
    if not ref or ref.startswith("-"):
        raise PromoteError(f"{ref!r} is not a revision")
    found = proc.run(["git", "rev-parse", "--verify", "-q", "--end-of-options", f"{ref}^{{commit}}"],
                     cwd=root, check=False)
    if found.code != 0:
        raise PromoteError(f"unknown revision {ref!r}: Git knows no commit of that name in {root}")
    return found.stdout.decode().strip()


def _tag_exists(root: str, name: str) -> bool:
    return proc.run(["git", "rev-parse", "--verify", "-q", f"refs/tags/{name}"], cwd=root,
                    check=False).code == 0


def _pipeline(spec: Spec, entry_point: str) -> list[str]:
    """The entry point and every one it needs, transitively."""
    seen: list[str] = []
    todo = [entry_point]
    while todo:
        name = todo.pop()
        if name in seen or name not in spec.entry_points:
            continue
        seen.append(name)
        todo.extend(spec.entry_points[name].needs)
    return seen


def _dirty(spec: Spec) -> list[str]:
    from mlproject.runner.facts import gitstate

    written = [out for e in spec.entry_points.values() for out in e.outputs]
    written += [f for e in spec.entry_points.values() for f in (e.metrics, e.series) if f]
    prefixes = [os.path.normpath(p).replace(os.sep, "/").rstrip("/") for p in written]
    prefixes.append(gitstate.STATE_DIR)
    state = gitstate.code_state(spec.root)
    return sorted(p for p in state.changes
                  if not any(p == x or p.startswith(x + "/") for x in prefixes))


def _md5(root: str, path: str) -> str | None:
    from mlproject.runner.facts.received import content_md5

    try:
        return content_md5(root, path, links="record", save=False)
    except OSError as exc:
        raise Refused([f"the model file {path!r} cannot be hashed: {exc}"]) from None


def payload(model: Model, version: str, commit: str, stage: str | None, entry: LockEntry | None,
            model_md5: str | None, overridden: Sequence[str]) -> dict[str, Any]:
    return {
        "model": model.name, "version": version, "stage": stage, "commit": commit,
        "path": model.path, "entry_point": model.entry_point, "output": model.output,
        "model_md5": model_md5,
        "output_md5": None if entry is None else entry.outputs.get(model.output),
        "lock": None if entry is None else entry.to_json(),
        "forced": list(overridden),
    }


def plan(spec: Spec, request: Request, staleness: Staleness | None) -> Promotion:
    """What to tag, after the checks (Refused: reasons, unless request.force)."""
    root = spec.root
    model = spec.models.get(request.model)
    if model is None:
        declared = ", ".join(spec.models) or "none"
        raise PromoteError(f"no model {request.model!r} among the models: of {spec.file} "
                           f"(declared: {declared}): declare it there, with its path (an output "
                           "of an entry point)")
    try:
        tags.check_name(model.name, "model name")
        if request.stage is not None:
            tags.check_name(request.stage, "stage name")
        asked = None if request.version is None else tags.parse_version(request.version)
    except tags.TagError as exc:
        raise PromoteError(str(exc)) from None
    try:
        refs = registry.read_tags(root, model=model.name)
    except registry.RegistryError as exc:
        raise PromoteError(str(exc)) from None
    parsed = [(r, p) for r in refs if (p := tags.parse(r.name)) is not None and p.model == model.name]
    state = registry.model_state(model.name, parsed) if parsed else None
    active = {v.version: v for v in (state.versions if state else ()) if v.registered}
    counter = tags.next_counter(model.name, [r.name for r, _ in parsed])

    if asked is not None and str(asked) in active and request.stage is not None:
        return _assign(spec, model, active[str(asked)], request.stage, counter, state)
    commit = resolve_commit(root, request.ref)
    at_commit = [v for v in active.values() if v.commit == commit]
    if asked is None and request.bump is None and request.stage is not None and at_commit:
        return _assign(spec, model, at_commit[0], request.stage, counter, state)
    if at_commit:
        there = at_commit[0].version
        raise PromoteError(
            f"{model.name} {there} is already registered at {commit[:12]}: a commit holds one "
            f"version; assign it a stage with `mlproject promote {model.name} --version "
            f"{there[1:]} --stage STAGE`")
    cancelled = sorted(p.version for r, p in parsed if r.commit == commit and p.version is not None
                       and p.action is tags.Action.REGISTER and p.version not in active)
    if cancelled:
        raise PromoteError(
            f"{model.name} {cancelled[0]} was registered at {commit[:12]} and deregistered: GTO "
            "reads one version per commit, so no other can be registered there")
    greatest = max((tags.parse_version(v) for v in active), key=lambda v: v.key(), default=None)
    version = asked or (greatest or tags.ZERO).bumped(request.bump or "patch")
    name = tags.version_tag(model.name, version)
    if _tag_exists(root, name):
        raise PromoteError(f"the tag {name} exists already: a version is never re-tagged "
                           f"(clones keep the old tag); register another version")
    reasons: list[str] = []
    if greatest is not None and version.key() <= greatest.key():
        reasons.append(f"version {version} does not increase: {model.name}'s greatest is "
                       f"{greatest} (use --bump, or a greater --version)")
    head = resolve_commit(root, "HEAD")
    entry: LockEntry | None = None
    model_md5: str | None = None
    if head != commit:
        reasons.append(f"{request.ref} ({commit[:12]}) is not the commit checked out here "
                       f"({head[:12]}): its lock and model file cannot be checked; check it out")
    else:
        dirty = _dirty(spec)
        if dirty:
            shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
            reasons.append(f"the working tree has changes that are not committed: {shown} "
                           "(commit them, or remove them)")
    lock = _lock_at(root, commit)
    if lock is None:
        reasons.append(f"there is no {lockfile.LOCK_FILE} at {request.ref}: run the pipeline "
                       f"(`mlproject run . -e {model.entry_point}`) and commit the lock")
    else:
        entry = lock.entries.get(model.entry_point)
        if entry is None:
            reasons.append(f"{lockfile.LOCK_FILE} at {request.ref} has no entry for "
                           f"{model.entry_point}, which writes {model.path}: run it and commit the lock")
    if entry is not None and head == commit:
        if staleness is None:
            reasons.append("whether the lock is current could not be computed")
        else:
            reasons += staleness(spec, model.entry_point)
        model_md5 = _md5(root, model.path)
        output_md5 = _md5(root, model.output) if model.output != model.path else model_md5
        locked = entry.outputs.get(model.output)
        if model_md5 is None:
            reasons.append(f"the model file {model.path} is not in the working tree (run "
                           f"`mlproject run . -e {model.entry_point}`, or pull it with DVC)")
        elif output_md5 != locked:
            reasons.append(f"the model file {model.path} does not match the lock: "
                           f"{model.output} is {output_md5}, the lock says {locked}")
    if lock is not None:
        previous = None if greatest is None else tags.version_tag(model.name, greatest)
        base = None if previous is None else _lock_at(root, f"refs/tags/{previous}")
        wanted = _pipeline(spec, model.entry_point)
        verdicts = [v for v in gates.evaluate(spec, lock, base) if v.entry_point in wanted]
        reasons += [f"gate failed: {v.line()}" + (f" (base: {previous})" if previous else "")
                    for v in gates.failed(verdicts)]
    if reasons and not request.force:
        raise Refused(reasons)
    summary = (f"{model.name} {version}: registered by mlproject promote ({model.entry_point}, "
               f"fingerprint {entry.fingerprint[:12] if entry else 'none'})")
    new = [NewTag(name, tags.message(summary, payload(model, str(version), commit, None, entry,
                                                      model_md5, reasons)))]
    if request.stage is not None:
        stage_name = tags.stage_tag(model.name, request.stage, counter)
        text = tags.message(f"{model.name} {version} -> {request.stage}: assigned by mlproject promote",
                            payload(model, str(version), commit, request.stage, entry, model_md5, reasons))
        new.append(NewTag(stage_name, text))
    return Promotion(model.name, str(version), commit, tuple(new), tuple(reasons))


def _lock_at(root: str, ref: str) -> Lock | None:
    try:
        return lockfile.at_ref(root, ref)
    except lockfile.LockError as exc:
        raise Refused([str(exc)]) from None


def _assign(spec: Spec, model: Model, version: registry.VersionState, stage: str, counter: int,
            state: registry.ModelState | None) -> Promotion:
    """A stage for a version that exists: its payload is its commit's lock entry."""
    notes: list[str] = []
    if state is not None and state.stages.get(stage) == version.version:
        return Promotion(model.name, version.version, version.commit, (),
                         notes=(f"{model.name} {version.version} holds {stage} already: no tag created",))
    if state is not None and state.deprecated:
        notes.append(f"{model.name} is deprecated: this assignment makes it active again")
    lock = _lock_at(spec.root, version.commit)
    entry = None if lock is None else lock.entries.get(model.entry_point)
    locked = None if entry is None else entry.outputs.get(model.output)
    text = tags.message(f"{model.name} {version.version} -> {stage}: assigned by mlproject promote",
                        payload(model, version.version, version.commit, stage, entry,
                                locked if model.output == model.path else None, ()))
    new = NewTag(tags.stage_tag(model.name, stage, counter), text)
    return Promotion(model.name, version.version, version.commit, (new,), notes=tuple(notes))


def create(root: str, promotion: Promotion) -> list[str]:
    """Create the tags (annotated, message verbatim); the names created."""
    made: list[str] = []
    for new in promotion.tags:
        fd, path = tempfile.mkstemp(prefix="mlproject-tag-", suffix=".txt")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(new.message)
            # names are checked (tags.check_name): none starts with '-'; the commit is a full sha
            proc.run(["git", "tag", "-a", "--cleanup=verbatim", "-F", path, new.name,
                      promotion.commit], cwd=root)
        finally:
            os.unlink(path)
        made.append(new.name)
    return made


def push(root: str, remote: str, names: Sequence[str]) -> None:
    """Push exactly these tags (ProcError when git push fails)."""
    if not remote or remote.startswith("-"):
        raise PromoteError(f"{remote!r} is not a remote")
    if names:
        proc.run(["git", "push", "--quiet", remote, *(f"refs/tags/{n}:refs/tags/{n}" for n in names)],
                 cwd=root, timeout=600)
