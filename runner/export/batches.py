"""An exported run's values cut into `log_batch` calls that MLflow takes.

MLflow refuses a batch of more than 1000 metrics, 100 parameters or 100 tags, 1000 entries in
all, or a request over 1 MB (mlflow.utils.validation: MAX_METRICS_PER_BATCH,
MAX_PARAMS_TAGS_PER_BATCH, MAX_ENTITIES_PER_BATCH, MAX_BATCH_LOG_REQUEST_SIZE). Each batch here
holds one kind, so the counts are met alone, and is kept under a size measured as JSON with every
character escaped (the most a request can grow to).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from mlproject.runner.export.mapping import MlflowRun, Point

MAX_METRICS = 1000
MAX_PARAMS_TAGS = 100
MAX_BYTES = 900_000  # under MLflow's 1 MB, leaving room for the request's own keys
T = TypeVar("T")


@dataclass(frozen=True)
class Batch:
    metrics: tuple[Point, ...] = ()
    params: tuple[tuple[str, str], ...] = ()
    tags: tuple[tuple[str, str], ...] = ()


def _size(*values: object) -> int:
    return len(json.dumps(values, ensure_ascii=True)) + 40  # + the keys of one entry


def _chunks(items: Sequence[T], most: int, size: Callable[[T], int]) -> Iterator[tuple[T, ...]]:
    chunk: list[T] = []
    used = 0
    for item in items:
        cost = size(item)
        if chunk and (len(chunk) == most or used + cost > MAX_BYTES):
            yield tuple(chunk)
            chunk, used = [], 0
        chunk.append(item)
        used += cost
    if chunk:
        yield tuple(chunk)


def batches(run: MlflowRun) -> Iterator[Batch]:
    """The calls that log `run`'s parameters, then its tags, then its metrics."""
    for params in _chunks(run.params, MAX_PARAMS_TAGS, lambda p: _size(*p)):
        yield Batch(params=params)
    for tags in _chunks(run.tags, MAX_PARAMS_TAGS, lambda t: _size(*t)):
        yield Batch(tags=tags)
    for metrics in _chunks(run.metrics, MAX_METRICS,
                           lambda m: _size(m.key, m.value, m.timestamp, m.step)):
        yield Batch(metrics=metrics)
