"""Commands with `{name}` and `{data.NAME}` placeholders, read with `str.format`'s grammar,
and rendered with each value quoted for the shell context its placeholder is in."""
from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from string import Formatter
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the lexer is needed only when a file is built, not when a plan is rendered
    from mlproject.spec.shell import Analysis, Context

_DOUBLE_SPECIAL = re.compile(r'([$`"\\])')


@dataclass(frozen=True)
class Placeholder:
    name: str  # a parameter name, or `data.NAME`
    context: Context = "unquoted"  # where the lexer found it (spec.shell)


class TemplateError(ValueError):
    pass


def parse(command: str) -> list[str | Placeholder]:
    """Literal text and placeholders, `{{` and `}}` already unescaped, as str.format reads them."""
    parts: list[str | Placeholder] = []
    try:
        pieces = list(Formatter().parse(command))
    except ValueError as exc:
        raise TemplateError(f"command: {exc} (write '{{{{' or '}}}}' for a literal brace)") from None
    for literal, field, spec, conversion in pieces:
        if literal:
            parts.append(literal)
        if field is None:
            continue
        if field == "" or field.isdigit():
            raise TemplateError("command: positional placeholder '{}' is not allowed; name a parameter")
        if spec or conversion:
            raise TemplateError(f"command: placeholder {{{field}}} takes no format spec or conversion")
        parts.append(Placeholder(field))
    return parts


def placed(parts: Sequence[str | Placeholder], analysis: Analysis) -> tuple[str | Placeholder, ...]:
    """The parts with each placeholder's context; a refused one stays unquoted (never rendered:
    the file is refused)."""
    contexts = iter(analysis.contexts)
    out: list[str | Placeholder] = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        else:
            found: Context | None = next(contexts)
            out.append(replace(part, context=found or "unquoted"))
    return tuple(out)


def quote(value: str, context: Context) -> str:
    """`value` as text that bash reads back as exactly `value` in `context`."""
    if context == "double":  # only these four are special between double quotes
        return _DOUBLE_SPECIAL.sub(r"\\\1", value)
    if context == "single":  # close, an escaped quote, reopen
        return value.replace("'", "'\\''")
    return shlex.quote(value)  # as MLflow does


def render(parts: Sequence[str | Placeholder], values: Mapping[str, str]) -> str:
    """The command, each placeholder replaced by its raw value quoted for its context."""
    return "".join(p if isinstance(p, str) else quote(values[p.name], p.context) for p in parts)
