"""The test engine itself (tests/dockerengine.py): it runs containers as the docker backend's
tests assume, and enforces a memory limit with the kernel's OOM killer."""
from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = pytest.mark.slow


def test_the_engine_runs_the_test_image_and_reports_oom(docker: Any) -> None:
    done = docker.docker("run", "--rm", "--network", "none", docker.image, "python3", "-c",
                         "import sys; print(sys.version_info[:2])")
    assert done.stdout.strip() == "(3, 11)"
    cid = docker.docker("run", "-d", "--network", "none", "--memory", "32m", "--memory-swap",
                        "32m", docker.image, "python3", "-c",
                        "x = bytearray(256 * 2**20)").stdout.strip()
    assert docker.docker("wait", cid).stdout.strip() == "137"
    state = json.loads(docker.docker("inspect", "-f", "{{json .State}}", cid).stdout)
    assert state["OOMKilled"] is True and state["ExitCode"] == 137
    docker.docker("rm", cid)
    assert docker.containers() == []
