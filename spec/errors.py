"""The one error type of the format, and the located problems it carries."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# A path into the document: mapping keys and sequence indexes, outermost first.
DocPath = tuple[str | int, ...]
Severity = Literal["error", "warning"]


def dotted(path: DocPath) -> str:
    """`('entry_points', 'train', 'needs', 0)` -> `entry_points.train.needs[0]`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(frozen=True)
class Problem:
    file: str
    line: int  # 1-based
    col: int  # 1-based
    path: DocPath
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        if self.line == 0:  # about the file as a whole, not a place in it
            return f"{self.file}: {self.message}"
        where = f"{dotted(self.path)}: " if self.path else ""
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.file}:{self.line}:{self.col}: {prefix}{where}{self.message}"


class SpecError(Exception):
    """An MLproject file that cannot be used; every problem found is listed."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.line, p.col, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))
