"""The Ray pass (see tests/test_ray_pass.py): one Ray head for the whole pass, started in this
process's private network namespace and stopped by pid at the end (tests/raycluster.py)."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    from tests import raycluster

    try:
        raycluster.check()
        with raycluster.head() as cluster:
            yield cluster
    except raycluster.Unavailable as exc:
        raycluster.unavailable(str(exc))


@pytest.fixture
def ray(ray_cluster: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The cluster, its address given to the ray backend through the environment."""
    monkeypatch.setenv("MLPROJECT_RAY_ADDRESS", ray_cluster.address)
    return ray_cluster
