"""`load(path) -> Spec`: find the file, parse it keeping positions, validate, build the model."""
from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any, Protocol

from mlproject.spec.errors import Problem, SpecError
from mlproject.spec.model import Spec

FILE_NAME = "MLproject"


class Cache(Protocol):
    """Where a caller keeps what loading found before (the runner keeps it in the user cache);
    the format itself writes nothing."""

    def built(self, content: bytes, strict: bool) -> Spec | None: ...

    def remember_spec(self, content: bytes, strict: bool, spec: Spec) -> None: ...

    def validated(self, schema: bytes, content: bytes, strict: bool) -> list[dict[str, Any]] | None:
        """The warnings of these exact bytes validated before, or None."""

    def remember(self, schema: bytes, content: bytes, strict: bool,
                 warnings: list[dict[str, Any]]) -> None: ...


def _display(path: Path) -> str:
    """The file as the user would name it: relative to the working directory when inside it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if relative.startswith("..") else relative


def find_spec_file(path: str | os.PathLike[str] = ".") -> Path:
    """The MLproject file of a project directory; like MLflow, its name may be in any case."""
    target = Path(path)
    if target.is_dir():
        candidates = sorted(p for p in target.iterdir() if p.name.lower() == FILE_NAME.lower())
        exact = [p for p in candidates if p.name == FILE_NAME]
        if exact or candidates:
            return (exact or candidates)[0]
        raise SpecError([Problem(_display(target), 0, 0, (), f"no {FILE_NAME} file in this directory")])
    if target.exists():
        return target
    raise SpecError([Problem(_display(target), 0, 0, (), "no such file or directory")])


def _absolute(file: Path) -> Path:
    """The file where the user named it, made absolute but not resolved: a linked MLproject
    runs in the directory that holds the link (its root), not in the directory of its target.
    A directory named with '..' is resolved, since '..' after a link is not what it reads as."""
    absolute = Path(os.path.abspath(file.parent)) if ".." not in file.parent.parts \
        else file.parent.resolve()
    return absolute / file.name


def _decode(content: bytes, display: str) -> str:
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = content[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        message = f"not UTF-8 text (byte 0x{content[exc.start]:02x})"
        raise SpecError([Problem(display, line, col, (), message)]) from None


def load(path: str | os.PathLike[str] = ".", *, strict: bool = False,
         cache: Cache | None = None) -> Spec:
    """Load and validate an MLproject file (or the one in a directory). Raises SpecError only.
    `cache`: what was loaded before from the same bytes (a validation, a whole Spec) is reused."""
    file = _absolute(find_spec_file(path))
    display = _display(file)
    try:
        content = file.read_bytes()
    except OSError as exc:
        raise SpecError([Problem(display, 0, 0, (), f"cannot read: {exc.strerror}")]) from None
    built = cache.built(content, strict) if cache is not None else None
    if isinstance(built, Spec):  # the same bytes, loaded before: only the place differs
        warnings = tuple(dataclasses.replace(w, file=display) for w in built.warnings)
        return dataclasses.replace(built, file=str(file), root=str(file.parent), warnings=warnings)
    spec = _build(file, display, content, strict, cache)
    if cache is not None:
        cache.remember_spec(content, strict, spec)
    return spec


def _build(file: Path, display: str, content: bytes, strict: bool, cache: Cache | None) -> Spec:
    from mlproject.spec import validate, yamlpos
    from mlproject.spec.build import Builder

    try:
        doc = yamlpos.parse(_decode(content, display))
    except yamlpos.YamlProblem as exc:
        raise SpecError([Problem(display, exc.line, exc.col, exc.path, exc.message)]) from None
    if not isinstance(doc.data, dict):
        found = "the file is empty" if doc.data is None else f"found {validate.describe(doc.data)}"
        raise SpecError([Problem(display, *doc.locate(()), (), f"expected a mapping with "
                                 f"entry_points at the top level; {found}")])

    schema = validate.schema_text()
    known = cache.validated(schema, content, strict) if cache is not None else None
    if known is not None:
        problems = [Problem(display, p["line"], p["col"], tuple(p["path"]), p["message"], "warning")
                    for p in known]
    else:
        problems = validate.check(doc, display, strict)
        if cache is not None and not any(p.severity == "error" for p in problems):
            cache.remember(schema, content, strict, [
                {"line": p.line, "col": p.col, "path": list(p.path), "message": p.message}
                for p in problems])
    if any(p.severity == "error" for p in problems):
        raise SpecError(problems)

    builder = Builder(doc, display, strict)
    spec = builder.build(str(file), str(file.parent), hashlib.sha256(content).hexdigest())
    problems += builder.problems
    if any(p.severity == "error" for p in problems):
        raise SpecError(problems)
    return dataclasses.replace(spec, warnings=tuple(sorted(problems, key=lambda p: (p.line, p.col))))
