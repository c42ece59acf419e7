"""`mlproject report --plots DIR`: PNG pictures of the report, drawn with matplotlib (the `plots`
extra, imported here only, with the Agg backend: no display is needed or touched).

- `metrics-ENTRY.png`: every metric of the entry point as a small chart of its own (scales
  differ), base against head; gated metrics first.
- `series-ENTRY.png`: where the entry point declares `metrics: {file, series}`, each column of
  the series file per epoch, base (dashed) against head.

A series file is a CSV or TSV with a header row, or JSON (a list of objects, or an object of
lists); one row per epoch. A column named `epoch` or `step` is the x axis, else the row number.
Cells that are no finite number are left out of their line.
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlproject.runner.gitops.report import EntryReport, Report
from mlproject.runner.util.extras import MissingExtra, importable, install_line

# Charts per picture: gated metrics first, then the most changed. A panel costs ~30-80 ms to
# draw here, and CI draws every entry point's: the JSON has every number.
MAX_PANELS = 12
MAX_ROWS = 100_000  # rows read of a series file
X_COLUMNS = ("epoch", "step")


class PlotError(Exception):
    """A picture cannot be made (exit 2)."""


class NeedsMatplotlib(PlotError, MissingExtra):
    pass


def check() -> None:
    """NeedsMatplotlib, with the install line, when the extra is not installed."""
    if not importable("matplotlib"):
        raise NeedsMatplotlib("--plots draws with matplotlib, which is not installed: "
                              f"{install_line('plots')}")


@dataclass(frozen=True)
class Series:
    x: str  # the x axis's name
    columns: Mapping[str, tuple[tuple[float, float], ...]]  # name -> (x, y) points


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def parse_series(text: str, name: str) -> Series:
    """The series a file holds; PlotError naming `name` when it holds none."""
    rows: list[Mapping[str, Any]]
    if name.lower().endswith(".json"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise PlotError(f"{name} is not JSON: {exc}") from None
        if isinstance(data, dict) and all(isinstance(v, list) for v in data.values()):
            length = max((len(v) for v in data.values()), default=0)
            rows = [{k: v[i] for k, v in data.items() if i < len(v)} for i in range(length)]
        elif isinstance(data, list) and all(isinstance(r, dict) for r in data):
            rows = data
        else:
            raise PlotError(f"{name}: expected a list of objects (a row per epoch) or an object "
                            "of lists (a column per name)")
    else:
        dialect = "excel-tab" if name.lower().endswith(".tsv") else "excel"
        rows = list(csv.DictReader(io.StringIO(text), dialect=dialect))
    rows = rows[:MAX_ROWS]
    names = list(dict.fromkeys(k for row in rows for k in row if isinstance(k, str)))
    x = next((n for n in names if n.lower() in X_COLUMNS), None)
    columns: dict[str, tuple[tuple[float, float], ...]] = {}
    for column in names:
        if column == x:
            continue
        points = []
        for i, row in enumerate(rows):
            at = _float(row.get(x)) if x else float(i)
            value = _float(row.get(column))
            if at is not None and value is not None:
                points.append((at, value))
        if points:
            columns[column] = tuple(points)
    if not columns:
        raise PlotError(f"{name} holds no column of numbers")
    return Series(x or "row", columns)


def file_name(kind: str, entry_point: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", entry_point).lstrip(".") or "_"
    return f"{kind}-{safe}.png"


def _pyplot() -> Any:
    check()
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _grid(count: int) -> tuple[int, int]:
    cols = min(count, 4)
    return max(1, math.ceil(count / cols)), max(1, cols)


def _metrics_figure(plt: Any, entry: EntryReport, path: Path) -> bool:
    gated = {v.metric for v in entry.verdicts}
    metrics = sorted(entry.diff.metrics,
                     key=lambda m: (m.name not in gated, -abs(m.relative or 0.0), m.base == m.head))
    left = max(0, len(metrics) - MAX_PANELS)
    metrics = metrics[:MAX_PANELS]
    if not metrics:
        return False
    rows, cols = _grid(len(metrics))
    figure, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        values = [metric.base, metric.head]
        bars = ax.bar(["base", "head"], [v if v is not None else 0.0 for v in values],
                      color=["#9e9e9e", "#1f77b4"])
        for bar, value in zip(bars, values, strict=True):
            ax.annotate("—" if value is None else f"{value:.4g}",
                        (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8)
        ax.set_title(_short(metric.name) + (" (gated)" if metric.name in gated else ""),
                     fontsize=9)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    more = f" ({left} more metrics in the JSON report)" if left else ""
    figure.suptitle(f"{entry.diff.entry_point}: base vs head{more}")
    figure.subplots_adjust(hspace=0.6, wspace=0.35)
    figure.savefig(path, format="png", dpi=80)
    plt.close(figure)
    return True


def _series_figure(plt: Any, entry_point: str, base: Series | None, head: Series | None,
                   path: Path) -> bool:
    names = list(dict.fromkeys([*(head.columns if head else {}), *(base.columns if base else {})]))
    names = names[:MAX_PANELS]
    if not names:
        return False
    rows, cols = _grid(len(names))
    figure, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        for label, series, style in (("base", base, "--"), ("head", head, "-")):
            points = series.columns.get(name) if series else None
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], style, label=label)
        ax.set_title(_short(name), fontsize=9)
        ax.set_xlabel(head.x if head else base.x if base else "row", fontsize=8)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    figure.suptitle(f"{entry_point}: per epoch")
    figure.subplots_adjust(hspace=0.6, wspace=0.35)
    figure.savefig(path, format="png", dpi=80)
    plt.close(figure)
    return True


def _short(name: str) -> str:
    # matplotlib reads $...$ as mathtext: a metric name is shown as it is
    text = name if len(name) <= 40 else name[:39] + "…"
    return text.replace("$", r"\$")


def write(directory: str, report: Report,
          series: Mapping[str, tuple[Series | None, Series | None]]) -> list[str]:
    """The pictures, written to `directory` (created); their paths. `series`: entry point ->
    (base, head) for those that declare a series file."""
    plt = _pyplot()
    out = Path(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PlotError(f"--plots {directory}: cannot create the directory ({exc.strerror})") from None
    written: list[str] = []
    for entry in report.entries:
        name = entry.diff.entry_point
        path = out / file_name("metrics", name)
        try:
            if _metrics_figure(plt, entry, path):
                written.append(str(path))
            path = out / file_name("series", name)
            if name in series and _series_figure(plt, name, *series[name], path):
                written.append(str(path))
        except OSError as exc:
            raise PlotError(f"{path} cannot be written: {exc.strerror or exc}") from None
    return written
