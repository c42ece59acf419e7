"""The Ray tests (tests/ray/), run as their own pytest pass inside a private network namespace:
Ray binds every interface whatever it is told, so its head and the tests that talk to it run
where the only interface is `lo` (tests/raycluster.py). The main pass skips the directory
(pyproject's norecursedirs); this test makes the namespace, runs the pass in it with a bound,
and shows its output when it fails."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
LIMIT = 900  # seconds for the whole pass (it takes ~1-2 minutes here)


@pytest.mark.slow
def test_the_ray_pass_passes_in_a_private_network_namespace() -> None:
    from tests import raycluster

    try:
        raycluster.check()
    except raycluster.Unavailable as exc:
        raycluster.unavailable(str(exc))
    with raycluster.netns() as name:
        env = {**os.environ, raycluster.NETNS_VAR: name, "PYTHONUNBUFFERED": "1"}
        argv = [raycluster._tool("ip"), "netns", "exec", name, sys.executable, "-m", "pytest",
                "-q", "-p", "no:cacheprovider", "-ra", str(HERE / "ray")]
        try:
            done = subprocess.run(argv, cwd=HERE.parent, env=env, capture_output=True, text=True,
                                  timeout=LIMIT, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout if isinstance(exc.stdout, str) else (exc.stdout or b"").decode()
            pytest.fail(f"the Ray pass did not end within {LIMIT}s:\n{out[-6000:]}")
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"the Ray pass failed ({done.returncode}):\n{output[-12000:]}"
    if " skipped" in output and os.environ.get("MLPROJECT_REQUIRE_ENGINES") == "1":
        pytest.fail(f"the Ray pass skipped tests where engines are required:\n{output[-6000:]}")
    print(output[-3000:])
