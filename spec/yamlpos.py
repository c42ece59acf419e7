"""YAML text -> plain Python values, keeping the position of every key and value.

Built on PyYAML's event stream instead of its composer: the walk is iterative (no input nests
deep enough to exhaust the stack), duplicate keys are rejected where they stand, and aliases
are bounded so that a "billion laughs" document is refused instead of expanded.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from mlproject.spec.errors import DocPath

MAX_DEPTH = 64
MAX_NODES = 200_000
_TOO_DEEP = f"the document nests deeper than {MAX_DEPTH} levels"

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _GuardedLoader(yaml.SafeLoader):
    """The pure-Python loader with our depth limit in its scanner. The scanner reads ahead of
    the events (a `[` may start a simple key), so some PyYAML versions refuse deep flow nesting
    with their own limit before our event walk sees depth 64: this loader makes ours win."""

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        if self.flow_level >= MAX_DEPTH:
            raise YamlProblem(*_pos(self.get_mark()), _TOO_DEEP)
        super().fetch_flow_collection_start(TokenClass)
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"
_PLAIN_COLLECTION_TAGS = {None, "!", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


class YamlProblem(Exception):
    def __init__(self, line: int, col: int, message: str, path: DocPath = ()) -> None:
        super().__init__(message)
        self.line, self.col, self.message, self.path = line, col, message, path


class _MergeKey:
    """The `<<` key of YAML's merge convention."""


MERGE_KEY = _MergeKey()
_NO_KEY = object()


@dataclass
class Document:
    data: Any
    positions: dict[DocPath, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[DocPath, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: DocPath) -> tuple[int, int]:
        """Position of the value at `path`, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            found = self.positions.get(path[:end])
            if found:
                return found
        return (1, 1)

    def locate_key(self, path: DocPath) -> tuple[int, int]:
        return self.key_positions.get(path) or self.locate(path)


@dataclass
class _Frame:
    container: dict[Any, Any] | list[Any]
    path: DocPath
    anchor: str | None
    size: int = 1
    key: Any = _NO_KEY
    key_mark: tuple[int, int] = (1, 1)
    explicit: set[Any] = field(default_factory=set)


def _pos(mark: Any) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1)


class _Builder:
    def __init__(self, text: str, loader: Any = _Loader) -> None:
        self.loader = loader(text)
        self.doc = Document(None)
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.total = 0
        self.documents = 0

    def run(self) -> Document:
        loader = self.loader
        try:
            while loader.check_event():
                self._event(loader.get_event())
        finally:
            loader.dispose()
        return self.doc

    def _event(self, ev: Any) -> None:
        if isinstance(ev, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                raise YamlProblem(*_pos(ev.start_mark), "expected one YAML document, found more")
        elif isinstance(ev, yaml.ScalarEvent):
            self._add(self._scalar(ev), _pos(ev.start_mark), ev.anchor, 1)
        elif isinstance(ev, yaml.AliasEvent):
            if ev.anchor not in self.anchors:
                raise YamlProblem(*_pos(ev.start_mark), f"alias *{ev.anchor} has no anchor before it")
            value, size = self.anchors[ev.anchor]
            self._add(value, _pos(ev.start_mark), None, size)
        elif isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            self._start(ev)
        elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            frame = self.stack.pop()
            if isinstance(frame.container, dict) and frame.key is not _NO_KEY:
                raise YamlProblem(*frame.key_mark, "mapping key without a value")
            self._add(frame.container, self.doc.locate(frame.path), frame.anchor, frame.size)

    def _start(self, ev: Any) -> None:
        mark = _pos(ev.start_mark)
        if ev.tag not in _PLAIN_COLLECTION_TAGS:
            raise YamlProblem(*mark, f"YAML tag {ev.tag} is not supported here")
        if len(self.stack) >= MAX_DEPTH:
            raise YamlProblem(*mark, _TOO_DEEP)
        path = self._child_path(mark)
        self.doc.positions[path] = mark
        container: dict[Any, Any] | list[Any]
        container = {} if isinstance(ev, yaml.MappingStartEvent) else []
        self.stack.append(_Frame(container, path, ev.anchor))

    def _child_path(self, mark: tuple[int, int]) -> DocPath:
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.container, list):
            return top.path + (len(top.container),)
        if top.key is _NO_KEY:
            raise YamlProblem(*mark, "a mapping or list cannot be used as a key")
        if top.key is MERGE_KEY:
            return top.path
        return top.path + (top.key,)

    def _scalar(self, ev: Any) -> Any:
        tag = ev.tag
        if tag is None or tag == "!":
            tag = self.loader.resolve(yaml.ScalarNode, ev.value, ev.implicit)
        if tag == _TIMESTAMP:
            return ev.value  # kept as written: MLflow str()s it back anyway
        if tag == _MERGE:
            return MERGE_KEY
        node = yaml.ScalarNode(tag, ev.value, ev.start_mark, ev.end_mark, ev.style)
        try:
            return self.loader.construct_object(node, deep=True)
        except ValueError:  # an integer past Python's digit limit
            raise YamlProblem(*_pos(ev.start_mark), "number too large") from None

    def _add(self, value: Any, mark: tuple[int, int], anchor: str | None, size: int) -> None:
        self.total += size
        if self.total > MAX_NODES:
            raise YamlProblem(*mark, f"the document expands to more than {MAX_NODES} values")
        if anchor:
            self.anchors[anchor] = (value, size)
        if not self.stack:
            self.doc.data = value
            self.doc.positions.setdefault((), mark)
            return
        top = self.stack[-1]
        top.size += size
        if isinstance(top.container, list):
            self.doc.positions[top.path + (len(top.container),)] = mark
            top.container.append(value)
        elif top.key is _NO_KEY:
            self._key(top, value, mark)
        elif top.key is MERGE_KEY:
            self._merge(top, value, mark)
        else:
            path = top.path + (top.key,)
            self.doc.positions[path] = mark
            self.doc.key_positions[path] = top.key_mark
            top.container[top.key] = value
            top.key = _NO_KEY

    def _key(self, top: _Frame, key: Any, mark: tuple[int, int]) -> None:
        if key is not MERGE_KEY:
            if not isinstance(key, str):
                raise YamlProblem(*mark, f"key {key!r} must be a string: quote it")
            if key in top.explicit:
                first = self.doc.key_positions.get(top.path + (key,), mark)
                raise YamlProblem(*mark, f"duplicate key {key!r} (first defined at line {first[0]})",
                                  top.path + (key,))
            top.explicit.add(key)
        top.key, top.key_mark = key, mark

    def _merge(self, top: _Frame, value: Any, mark: tuple[int, int]) -> None:
        sources = value if isinstance(value, list) else [value]
        if not all(isinstance(s, dict) for s in sources):
            raise YamlProblem(*mark, "a merge key '<<' takes a mapping or a list of mappings")
        assert isinstance(top.container, dict)
        for source in sources:
            for k, v in source.items():
                if k not in top.explicit and k not in top.container:
                    top.container[k] = v
                    self.doc.positions.setdefault(top.path + (k,), mark)
        top.key = _NO_KEY


def _reader_position(text: str, index: int) -> tuple[int, int]:
    before = text[:index]
    return (before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1)


def parse(text: str) -> Document:
    """Parse one YAML document; every failure is a YamlProblem with a position."""
    try:
        try:
            return _Builder(text).run()
        except yaml.MarkedYAMLError as exc:
            if "nesting depth" not in str(exc.problem):
                raise
            # PyYAML's own nesting limit (6.0.4 and later) fired in its read-ahead: scan again
            # with ours in the scanner, so the message and position do not depend on the version.
            return _Builder(text, _GuardedLoader).run()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = _pos(mark) if mark else (1, 1)
        message = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            message = f"{exc.problem} ({exc.context})"
        raise YamlProblem(line, col, f"YAML syntax: {message}") from None
    except yaml.reader.ReaderError as exc:
        line, col = _reader_position(text, exc.position)
        char = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or "\0")
        raise YamlProblem(line, col, f"YAML syntax: character U+{char:04X} is not allowed") from None
    except yaml.YAMLError as exc:
        raise YamlProblem(1, 1, f"YAML syntax: {exc}") from None
