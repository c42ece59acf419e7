"""The pull request's report: per entry point, the head lock against the base lock (metrics with
their gates, parameters, data pins, environments) and the local runs that made the head entry.

`build` makes the value (pure: locks, verdicts and run ids in); `to_json` is the whole of it;
`markdown` is what a reviewer reads in the comment: a summary first, so that a report cut to
GitHub's comment limit still says what failed, then each entry point with a Mermaid chart of the
gated metrics. Everything users control reaches the markdown through `code` (a code span), so a
name or a value cannot break a table, open a link, mention a team or inject HTML.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlproject.runner.gitops import diff

if TYPE_CHECKING:
    from mlproject.runner.gitops.gates import Verdict
    from mlproject.runner.gitops.lockfile import Lock

REPORT_FORMAT = "mlproject.report/1"
MARKER = "<!-- mlproject report -->"  # finds the sticky comment again
LIMIT = 65_536  # GitHub's comment limit, in characters
_CELL_MAX = 120  # characters of a user's value shown in a cell; the JSON has all of it


@dataclass(frozen=True)
class EntryReport:
    diff: diff.EntryDiff
    verdicts: tuple[Verdict, ...]
    runs: tuple[str, ...]  # ids of local succeeded runs with the head entry's fingerprint

    @property
    def failed(self) -> int:
        return sum(not v.passed for v in self.verdicts)


@dataclass(frozen=True)
class Report:
    base_ref: str | None  # None: no base named or found
    base_found: bool  # a lock at the base
    head_ref: str | None  # None: the working tree
    entries: tuple[EntryReport, ...]
    note: str | None = None  # why there is no baseline, in words

    @property
    def verdicts(self) -> list[Verdict]:
        return [v for e in self.entries for v in e.verdicts]


def build(base: Lock | None, head: Lock, verdicts: Sequence[Verdict],
          runs: Mapping[str, Sequence[str]], *, base_ref: str | None, head_ref: str | None,
          note: str | None = None) -> Report:
    """`runs`: fingerprint -> run ids (oldest first)."""
    by_entry: dict[str, list[Verdict]] = {}
    for verdict in verdicts:
        by_entry.setdefault(verdict.entry_point, []).append(verdict)
    entries = []
    for change in diff.locks(base, head):
        fingerprint = change.head_fingerprint
        found = tuple(runs.get(fingerprint, ())) if fingerprint else ()
        entries.append(EntryReport(change, tuple(by_entry.pop(change.entry_point, ())), found))
    for name, left in by_entry.items():  # gated entry points the head lock lacks
        entries.append(EntryReport(diff.entry(name, None, None), tuple(left), ()))
    return Report(base_ref, base is not None, head_ref, tuple(entries), note)


def runs_by_fingerprint(root: str) -> dict[str, list[str]]:
    from mlproject.runner.state import records
    from mlproject.runner.state.status import Status

    found: dict[str, list[str]] = {}
    for loaded in records.loaded_runs(root):
        record = loaded.record
        if record is not None and record.status == Status.SUCCEEDED:
            found.setdefault(record.fingerprint, []).append(loaded.id)
    return found


# --- JSON -------------------------------------------------------------------------------------

def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def to_json(report: Report) -> dict[str, Any]:
    def entry(e: EntryReport) -> dict[str, Any]:
        d = e.diff
        env = d.environment
        return {
            "entry_point": d.entry_point, "change": d.side, "reran": d.reran, "runs": list(e.runs),
            "base_fingerprint": d.base_fingerprint, "head_fingerprint": d.head_fingerprint,
            "metrics": [{"name": m.name, "base": m.base, "head": m.head, "delta": _finite(m.delta),
                         "relative": m.relative,
                         "gates": [v.to_json() for v in e.verdicts if v.metric == m.name]}
                        for m in d.metrics],
            "gates": [v.to_json() for v in e.verdicts],
            "parameters": [{"name": p.name, "base": p.base, "head": p.head} for p in d.parameters],
            "data": [{"name": c.name, "path": c.path, "base": c.base and dict(c.base),
                      "head": c.head and dict(c.head), "size_delta": c.delta("size"),
                      "nfiles_delta": c.delta("nfiles")} for c in d.data],
            "environment": None if env is None else {
                "name": env.name, "base_key": env.base_key, "head_key": env.head_key,
                "packages": [{"name": p.name, "base": p.base, "head": p.head, "change": p.move}
                             for p in env.packages]},
        }

    verdicts = report.verdicts
    return {
        "format": REPORT_FORMAT,
        "base": {"ref": report.base_ref, "lock": report.base_found, "note": report.note},
        "head": {"ref": report.head_ref},
        "gates": {"passed": sum(v.passed for v in verdicts),
                  "failed": sum(not v.passed for v in verdicts)},
        "entry_points": [entry(e) for e in report.entries],
    }


# --- markdown ---------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_TICKS = re.compile(r"`+")


def _control(found: re.Match[str]) -> str:
    char = found.group()
    return "\\n" if char == "\n" else f"\\x{ord(char):02x}"


def code(value: object, limit: int = _CELL_MAX) -> str:
    """`value` as a code span that shows it literally in a table cell: no markup, links,
    mentions or HTML inside one; `|` escaped (the table splits cells before inline parsing);
    line breaks and other controls shown as \\n, \\xNN; long values cut with an ellipsis."""
    text = str(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    if not text.isprintable():
        text = _CONTROL.sub(_control, text)
    text = text.replace("|", "\\|")
    longest = max((len(run) for run in _TICKS.findall(text)), default=0) if "`" in text else 0
    fence = "`" * (longest + 1)
    pad = " " if text.startswith(("`", " ")) or text.endswith(("`", " ")) or not text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def number(value: float | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, int) or (float(value).is_integer() and abs(value) < 1e15):
        return str(int(value))
    return f"{value:.6g}"


def _signed(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:+.4g}" if value else "0"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:+.2f} %"


def _chart_number(value: float) -> str:
    """A number Mermaid's grammar reads: no exponent."""
    text = f"{value:.6g}"
    if "e" in text:
        text = f"{value:.12f}".rstrip("0").rstrip(".") or "0"
    return text


def _label(name: str) -> str:
    """A metric name as a Mermaid axis label: inside quotes, with nothing that ends them."""
    safe = re.sub(r"[^A-Za-z0-9_.:/%+()= -]", "_", name)[:40]
    return f'"{safe}"'


_RULE = {"min": "≥", "max": "≤"}


def _gate(v: Verdict) -> str:
    mark = "✅" if v.passed else "❌"
    if v.value is None:
        return f"{mark} missing or not a number ({v.rule})"
    if v.bound is None:
        return f"{mark} no baseline ({v.rule})"
    if v.rule == "not_worse_than":  # the bound is the base less (higher is better) or plus
        lower = " + tolerance" in v.reason or (v.base_value is not None and v.bound > v.base_value)
        return (f"{mark} {'≤' if lower else '≥'} {number(v.bound)} (not worse than base "
                f"{number(v.base_value)})")
    return f"{mark} {_RULE.get(v.rule, v.rule)} {number(v.bound)} ({v.rule})"


def _where(ref: str | None, found: bool, base: bool) -> str:
    if ref is None:
        return "none" if base else "the working tree"
    shown = code(ref, 80)
    return shown if found or not base else f"{shown} (no `mlproject.lock` there)"


def _summary(report: Report) -> list[str]:
    verdicts = report.verdicts
    failed = [v for v in verdicts if not v.passed]
    lines = [MARKER, "## mlproject report", "",
             f"Base {_where(report.base_ref, report.base_found, True)} · head "
             f"{_where(report.head_ref, True, False)}", ""]
    if not report.base_found:
        why = f": {report.note}" if report.note else ""
        lines += [f"> **No baseline**{why}. Metrics are shown without a comparison.", ""]
    if verdicts:
        state = "❌" if failed else "✅"
        lines += [f"{state} **Gates:** {len(verdicts) - len(failed)} passed, {len(failed)} failed",
                  ""]
    else:
        lines += ["No gates are declared.", ""]
    for v in failed:
        lines.append(f"- ❌ {code(v.entry_point)} {code(v.metric)}: head {number(v.value)}, "
                     f"needs {_gate(v)[2:]}")
    if failed:
        lines.append("")
    lines += ["| Entry point | Gates | Run | Metrics changed | Parameters | Data | Environment |",
              "|---|---|---|--:|--:|--:|---|"]
    for e in report.entries:
        d = e.diff
        gates = "—" if not e.verdicts else "❌ " + str(e.failed) if e.failed else "✅"
        changed = sum(m.base != m.head for m in d.metrics)
        env = "—" if d.environment is None else f"{len(d.environment.packages)} packages"
        lines.append(f"| {code(d.entry_point)} | {gates} | {_run(e)} | {changed} | "
                     f"{len(d.parameters)} | {len(d.data)} | {env} |")
    lines.append("")
    return lines


def _run(e: EntryReport) -> str:
    d = e.diff
    if d.side == "removed":
        return "removed from the lock"
    if d.head_fingerprint is None:
        return "not in the lock"
    if not d.reran:
        return "not re-run (as the base)"
    if not e.runs:
        return "re-ran (no local run record)"
    return "re-ran: " + ", ".join(code(r) for r in e.runs[-3:])


def _chart(e: EntryReport, base_found: bool) -> list[str]:
    gated = {v.metric for v in e.verdicts}
    shown = [m for m in e.diff.metrics if m.name in gated and m.head is not None
             and (m.base is not None or not base_found)]
    if not shown:
        return []
    title = f"{e.diff.entry_point}: base (bars) vs head (line)" if base_found \
        else f"{e.diff.entry_point}: head (no baseline)"
    lines = ["```mermaid", "xychart-beta", f"    title {_label(title)[:-1]}\"",
             f"    x-axis [{', '.join(_label(m.name) for m in shown)}]"]
    if base_found:
        lines.append(f"    bar [{', '.join(_chart_number(m.base or 0.0) for m in shown)}]")
    lines += [f"    line [{', '.join(_chart_number(m.head or 0.0) for m in shown)}]", "```"]
    return ["\n".join(lines) + "\n\n"]


def _entry(e: EntryReport, base_found: bool) -> list[str]:
    """The entry point's section as blocks: a row is the smallest unit a cut may drop."""
    d = e.diff
    blocks = [f"### {'❌' if e.failed else '✅' if e.verdicts else '•'} {code(d.entry_point)}\n\n"
              f"{_run(e)}\n"]
    gates: dict[str, list[Verdict]] = {}
    for v in e.verdicts:
        gates.setdefault(v.metric, []).append(v)
    order = sorted(d.metrics, key=lambda m: (m.name not in gates, m.base == m.head))
    if order:
        blocks.append("\n| Metric | Base | Head | Δ | Δ % | Gate |\n|---|--:|--:|--:|--:|---|\n")
        blocks += [f"| {code(m.name)} | {number(m.base)} | {number(m.head)} | {_signed(m.delta)} "
                   f"| {_percent(m.relative)} | "
                   f"{'<br>'.join(_gate(v) for v in gates.get(m.name, [])) or '—'} |\n"
                   for m in order]
    for name in gates:
        if all(m.name != name for m in d.metrics):
            blocks.append(f"\n- {code(name)}: {'<br>'.join(_gate(v) for v in gates[name])}\n")
    blocks += ["\n", *_chart(e, base_found)]
    if d.parameters:
        blocks.append("**Parameters**\n\n| Parameter | Base | Head |\n|---|---|---|\n")
        blocks += [f"| {code(p.name)} | {_maybe(p.base)} | {_maybe(p.head)} |\n"
                   for p in d.parameters]
        blocks.append("\n")
    if d.data:
        blocks.append("**Data**\n\n| Data | Path | MD5 | Size Δ | Files Δ |\n|---|---|---|--:|--:|\n")
        for c in d.data:
            old, new = c.field("md5", c.base), c.field("md5", c.head)
            md5 = f"{_maybe(old, 12)} → {_maybe(new, 12)}"
            blocks.append(f"| {code(c.name)} | {code(c.path)} | {md5} | {_bytes(c.delta('size'))} "
                          f"| {_signed(c.delta('nfiles'))} |\n")
        blocks.append("\n")
    env = d.environment
    if env is not None:
        keys = f"key {_maybe(env.base_key, 16)} → {_maybe(env.head_key, 16)}"
        blocks.append(f"**Environment** {_maybe(env.name)}: {keys}\n\n")
        if env.packages:
            blocks.append("| Package | Base | Head | Change |\n|---|---|---|---|\n")
            blocks += [f"| {code(p.name)} | {_maybe(p.base)} | {_maybe(p.head)} | {p.move} |\n"
                       for p in env.packages]
            blocks.append("\n")
    return blocks


def _maybe(value: str | None, limit: int = _CELL_MAX) -> str:
    return "—" if value is None else code(value, limit)


def _bytes(delta: int | None) -> str:
    if delta is None:
        return "—"
    size = abs(delta)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            shown = f"{size} {unit}" if unit == "B" else f"{size:.1f} {unit}"
            return ("+" if delta > 0 else "-" if delta < 0 else "") + shown
        size /= 1024  # type: ignore[assignment]
    return str(delta)  # pragma: no cover


def markdown(report: Report, limit: int = LIMIT) -> str:
    """The comment: every block that fits under `limit` characters, in order; a cut says so.
    The summary comes first, so a cut report still names every entry point and failed gate."""
    blocks = [(-1, line + "\n") for line in _summary(report)]
    blocks += [(i, b) for i, e in enumerate(report.entries) for b in _entry(e, report.base_found)]
    total = len(report.entries)
    note = ("\n> ✂️ Cut here to fit GitHub's comment limit ({limit:,} characters): {left} of "
            "{total} entry points are shown in part or not at all. `mlproject report --format "
            "json` holds all of it.\n")
    budget = limit - 1 - len(note.format(limit=limit, left=total, total=total))
    parts: list[str] = []
    size = 0
    for owner, block in blocks:
        if size + len(block) > budget:
            while parts and parts[-1].endswith("|\n") and "|---" in parts[-1]:
                parts.pop()  # a table header whose rows are all cut
            left = total - max(owner, 0)
            return "".join(parts) + note.format(limit=limit, left=left, total=total)
        parts.append(block)
        size += len(block)
    return "".join(parts)
