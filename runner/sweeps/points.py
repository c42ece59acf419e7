"""A sweep's points, as `-P` texts per parameter: the grid's every combination (the first
parameter varying slowest, as the file lists them), or `n` random draws with the sweep's seed.
Pure: the same sweep gives the same points, in the same order, on every machine (Python's
`random.Random` is specified to repeat a seed's sequence across platforms and releases)."""
from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping

from mlproject.spec.model import Distribution, Sweep

Point = Mapping[str, str]
DIGITS = 6  # significant digits of a drawn number: enough to tell points apart, short to read


def points(sweep: Sweep) -> list[dict[str, str]]:
    """Every point of the sweep, each with its fixed values too."""
    if sweep.grid:
        names = list(sweep.grid)
        combos = itertools.product(*(sweep.grid[n] for n in names))
        return [{**sweep.fixed, **dict(zip(names, combo, strict=True))} for combo in combos]
    draw = random.Random(sweep.seed)
    return [{**sweep.fixed, **{name: _drawn(draw, dist) for name, dist in sweep.space.items()}}
            for _ in range(sweep.n)]


def _drawn(draw: random.Random, dist: Distribution) -> str:
    if dist.kind == "choice":
        return str(draw.choice(dist.values))
    low, high = dist.values
    if dist.kind == "randint":
        return str(draw.randint(int(low), int(high)))
    if dist.kind == "loguniform":
        value = math.exp(draw.uniform(math.log(low), math.log(high)))
    else:
        value = draw.uniform(low, high)
    return _short(value)


def _short(value: float) -> str:
    text = f"{value:.{DIGITS}g}"
    return text if any(c in text for c in ".en") else text + ".0"  # a float reads as one
