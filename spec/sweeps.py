"""A sweep's declaration -> a checked `Sweep`, for `sweeps:` in MLproject (the builder reports
with the line and column) and for `mlproject sweep -e ... --grid ...` (the CLI reports with the
flag). What the schema cannot say is checked here: the entry point and parameters exist, every
value fits its parameter's type, a range has a step that reaches its stop, a distribution fits
its parameter (a number drawn for an int is refused: randint is for that), and the grid is not
larger than MAX_POINTS."""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from mlproject.spec import params
from mlproject.spec.errors import DocPath
from mlproject.spec.model import Distribution, EntryPoint, Sweep

MAX_POINTS = 100_000  # a sweep is that many run records; more is a mistake, not a search
Report = Callable[[DocPath, str], None]
_NUMERIC = ("int", "float")


def range_values(start: Any, stop: Any, step: Any) -> list[str] | str:
    """The texts of start, start+step, ... up to stop (included when a step lands on it), in
    decimal arithmetic (0.1 steps give 0.3, not 0.30000000000000004); or why there are none."""
    try:
        first, last, by = (Decimal(repr(v)) for v in (start, stop, step))
    except (InvalidOperation, ValueError):
        return "range is [start, stop, step]: three numbers"
    if not all(d.is_finite() for d in (first, last, by)):
        return "range takes finite numbers"
    if by == 0 or (last - first) * by < 0:
        return (f"step {step} never reaches {stop} from {start}" if by else
                "step 0 never reaches the stop")
    count = int((last - first) / by) + 1
    if count > MAX_POINTS:
        return f"range has {count} values, more than a sweep takes ({MAX_POINTS})"
    integral = all(isinstance(v, int) and not isinstance(v, bool) for v in (start, stop, step))
    out = []
    for i in range(count):
        value = first + by * i
        out.append(str(int(value)) if integral else _decimal_text(value))
    return out


def _decimal_text(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if "." in text or "e" in text else text + ".0"


def _value_problem(param_type: str, value: Any) -> str | None:
    text = params.as_text(value)
    unfit = params.unfit_text(text)
    if unfit:
        return f"{text!r} {unfit}"
    why = params.type_error(param_type, text)
    return f"{text!r} does not fit type {param_type}: {why}" if why else None


def build(name: str | None, raw: Mapping[str, Any], entries: Mapping[str, EntryPoint],
          report: Report, where: DocPath = ()) -> Sweep | None:
    """The sweep `raw` declares (its structure checked by the schema, or made by the CLI), or
    None after reporting each problem at its path under `where`."""
    before = [0]

    def problem(path: DocPath, message: str) -> None:
        before[0] += 1
        report(where + path, message)

    target = raw["entry_point"]
    entry = entries.get(target)
    if entry is None:
        known = ", ".join(entries) or "none"
        problem(("entry_point",), f"no entry point {target!r} (declared: {known})")
        return None
    declared = entry.parameters

    def typed(section: DocPath, pname: str) -> str | None:
        parameter = declared.get(pname)
        if parameter is None:
            shown = ", ".join(declared) or "none"
            problem((*section, pname), f"{pname!r} is not a parameter of entry point {target!r} "
                                      f"(its parameters: {shown})")
            return None
        return parameter.type

    fixed: dict[str, str] = {}
    for pname, value in (raw.get("parameters") or {}).items():
        kind = typed(("parameters",), pname)
        why = kind and _value_problem(kind, value)
        if why:
            problem(("parameters", pname), why)
        fixed[pname] = params.as_text(value)
    grid: dict[str, tuple[str, ...]] = {}
    for pname, values in (raw.get("grid") or {}).items():
        kind = typed(("grid",), pname)
        path: DocPath
        if isinstance(values, dict):
            made = range_values(*values["range"])
            if isinstance(made, str):
                problem(("grid", pname, "range"), made)
                continue
            texts, path = made, ("grid", pname, "range")
        else:
            texts, path = [params.as_text(v) for v in values], ("grid", pname)
        for i, text in enumerate(texts):
            why = kind and _value_problem(kind, text)
            if why:
                problem(*((path, f"range gives {why}") if isinstance(values, dict)
                          else (path + (i,), why)))
                break
        if len(set(texts)) != len(texts):
            problem(path, f"{pname} is given the same value twice")
        grid[pname] = tuple(texts)
    space: dict[str, Distribution] = {}
    random = raw.get("random") or {}
    for pname, body in (random.get("space") or {}).items():
        kind = typed(("random", "space"), pname)
        [(dist, args)] = body.items()
        where_dist: DocPath = ("random", "space", pname, dist)
        why = _distribution_problem(kind, dist, args) if kind else None
        if why:
            problem(where_dist, why)
            continue
        values = tuple(params.as_text(v) for v in args) if dist == "choice" else tuple(args)
        space[pname] = Distribution(dist, values)
    for pname in set(fixed) & (set(grid) | set(space)):
        problem(("parameters", pname), f"{pname} is both fixed and swept: remove it from one")
    size = math.prod(len(v) for v in grid.values()) if grid else int(random.get("n", 0))
    if size > MAX_POINTS:
        problem(("grid",), f"the grid has {size} points, more than a sweep takes ({MAX_POINTS})")
    if before[0]:
        return None
    return Sweep(name, target, fixed, grid, space, int(random.get("n", 0)),
                 int(random.get("seed", 0)), raw.get("metric"), raw.get("goal", "minimize"),
                 int(raw.get("jobs", 1)), raw.get("max_failures"))


def _distribution_problem(kind: str, dist: str, args: list[Any]) -> str | None:
    if dist == "choice":
        for value in args:
            why = _value_problem(kind, value)
            if why:
                return why
        return "choice is given the same value twice" if len(set(map(str, args))) < len(
            args) else None
    if kind not in _NUMERIC:
        return f"{dist} draws numbers, and the parameter is of type {kind}: use choice"
    if dist != "randint" and kind == "int":
        return f"{dist} draws any number, and the parameter is an int: use randint"
    low, high = args
    if not all(math.isfinite(v) for v in (low, high)):
        return f"{dist} takes finite numbers"
    if dist == "randint":
        return None if low <= high else f"randint's low {low} is above its high {high}"
    if low >= high:
        return f"{dist}'s low {low} must be below its high {high}"
    if dist == "loguniform" and low <= 0:
        return f"loguniform draws on a log scale: its low must be above 0, not {low}"
    return None
