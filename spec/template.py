"""Commands with `{name}` and `{data.NAME}` placeholders, read with `str.format`'s grammar."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from string import Formatter


@dataclass(frozen=True)
class Placeholder:
    name: str  # a parameter name, or `data.NAME`


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


def render(parts: list[str | Placeholder], values: Mapping[str, str]) -> str:
    return "".join(p if isinstance(p, str) else values[p.name] for p in parts)
