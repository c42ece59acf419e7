"""The line syntax of requirement files, as pip and uv read it: UTF-8, continuations, comments
and options, every problem named by file and line."""
from __future__ import annotations

import re
from collections.abc import Sequence

from mlproject.runner.envs.base import EnvError

_COMMENT = re.compile(r"(^|\s)#.*$")
_HASH = re.compile(r"^(sha256|sha384|sha512):([0-9a-fA-F]+)$")
_HASH_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}
# pip's options in requirement files (uv accepts the same), by their long names.
_LONG = {"-i": "--index-url", "-f": "--find-links", "-r": "--requirement", "-c": "--constraint",
         "-e": "--editable"}
_WITH_VALUE = {"--index-url", "--extra-index-url", "--find-links", "--requirement", "--constraint",
               "--editable", "--no-binary", "--only-binary", "--trusted-host", "--use-feature",
               "--hash"}
_FLAGS = {"--no-index", "--pre", "--prefer-binary", "--require-hashes"}


def decode(data: bytes, shown: str) -> str:
    """The text of a requirements file, or an EnvError naming the line of the first bad byte."""
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise EnvError(f"{shown}:{line}: not UTF-8 (byte {data[exc.start]:#04x}): requirement files "
                       "are read as UTF-8") from None


def logical_lines(text: str, shown: str,
                   line_map: Sequence[int] | None) -> list[tuple[int, str, str]]:
    """(index, file:line, text) of each line once continuations are joined and comments dropped."""
    def where(index: int) -> str:
        number = line_map[index] if line_map is not None and index < len(line_map) else index + 1
        return f"{shown}:{number}"

    text = text.removeprefix("\ufeff").removesuffix("\n")
    physical = [line.removesuffix("\r") for line in text.split("\n")]
    found: list[tuple[int, str, str]] = []
    start: int | None = None
    current = ""
    for index, raw in enumerate(physical):
        line = _COMMENT.sub("", raw).rstrip()
        if start is not None and not line.strip():
            raise EnvError(f"{where(start)}: the line ends with `\\` but the line it continues into "
                           f"({where(index)}) is {'a comment' if raw.strip() else 'blank'}: the "
                           "continuation is broken, and what follows would be read apart from it "
                           "(uv refuses such a file); remove the `\\` or the break")
        if line != raw.rstrip() and raw.rstrip().endswith("\\"):
            raise EnvError(f"{where(index)}: a `\\` at the end of a comment continues nothing: "
                           "what follows is read as a line of its own")
        if line.endswith("\\"):
            start = index if start is None else start
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            first = index if start is None else start
            found.append((first, where(first), current.strip()))
        start, current = None, ""
    if start is not None:
        raise EnvError(f"{where(start)}: the line ends with `\\` at the end of the file: the "
                       "continuation continues nothing (uv refuses it)")
    return found


def split_options(tokens: list[str], where: str) -> list[tuple[str, str]]:
    """(long option, value) pairs; anything else is an error."""
    found: list[tuple[str, str]] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        name, equals, value = token.partition("=")
        name = _LONG.get(name, name)
        if not token.startswith("-"):
            raise EnvError(f"{where}: unexpected {token!r}: one requirement or option a line")
        if name in _FLAGS:
            if equals:
                raise EnvError(f"{where}: {name} takes no value")
            found.append((name, ""))
        elif name in _WITH_VALUE:
            if not equals:
                index += 1
                if index == len(tokens) or tokens[index].startswith("-"):
                    raise EnvError(f"{where}: {name} needs a value")
                value = tokens[index]
            if not value:
                raise EnvError(f"{where}: {name} needs a value")
            found.append((name, value))
        else:
            raise EnvError(f"{where}: unknown option {token!r} (pip and uv refuse it)")
        index += 1
    return found


def hash_value(value: str, where: str) -> str:
    match = _HASH.match(value)
    if not match or len(match.group(2)) != _HASH_LENGTH[match.group(1)]:
        raise EnvError(f"{where}: --hash={value} is not a hash: expected sha256:<64 hex digits> "
                       "(or sha384, sha512)")
    return f"{match.group(1)}:{match.group(2).lower()}"
