"""A sweep on a real Slurm (tests/slurmcluster.py): its points as one job array
(`--array=0-N%J`), each point's record with its task's id and its log, metrics logged through
`mlproject.log` on the node, a failing point recorded with its log, --max-failures cancelling
the tasks not ended."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import git_init
from detached import Mlproject

pytestmark = pytest.mark.slow

TEXT = """
    name: hpc-sweep
    entry_points:
      main:
        parameters: {alpha: {type: float, default: 0.5}}
        command: "python3 -c \\"import sys; from mlproject import log; a = float(sys.argv[1]); print('task', a); [log.metric('loss', (a - 0.3) ** 2 + e, step=e) for e in range(3)]; sys.exit(5 if a == 0.9 else 0)\\" {alpha}"
      slow:
        parameters: {k: {type: int, default: 0}}
        command: "if [ {k} = 0 ]; then exit 7; fi; sleep 120"
"""


@pytest.fixture
def mlp(project: Callable[..., Path], slurm: Any) -> Iterator[Mlproject]:
    root = git_init(project({"MLproject": TEXT, ".gitignore": ".mlproject/\n"}))
    yield Mlproject(root)
    slurm.cancel_all()


def test_a_sweep_is_one_job_array_and_each_point_its_record(mlp: Mlproject, slurm: Any) -> None:
    done = mlp("sweep", "-e", "main", "--grid", "alpha=0.1,0.3,0.5,0.9", "--jobs", "2",
               "--backend", "slurm", "--metric", "loss", "--json", timeout=240)
    assert done.returncode == 1, done.stderr  # alpha=0.9 exits 5
    assert "submitted as one slurm job array" in done.stderr
    data = json.loads(done.stdout)
    points = data["points"]
    assert [p["parameters"]["alpha"] for p in points] == ["0.3", "0.1", "0.5", "0.9"]  # by loss
    assert [p["status"] for p in points] == ["succeeded"] * 3 + ["failed"]
    found = [mlp.record(p["run"]) for p in points]
    arrays = {r["handle"]["data"]["array"] for r in found}
    assert len(arrays) == 1  # one array job
    [array] = arrays
    assert {r["handle"]["id"] for r in found} == {f"{array}_{i}" for i in range(4)}
    for record in found:
        alpha = record["parameters"]["alpha"]
        log = (mlp.root / ".mlproject" / "runs" / record["id"] / "log.txt").read_text()
        assert f"task {float(alpha)}" in log  # the task ran its own point
        engine = record["engine"]  # the task's own job id, and its place in the array
        assert engine["array_job_id"] == array
        assert f"{array}_{engine['array_task_id']}" == record["handle"]["id"]
    ok = found[0]
    assert [p[:2] for p in ok["series"]["loss"]] == [[0, 0.0], [1, 1.0], [2, 2.0]]
    assert found[-1]["exit_code"] == 5 and found[-1]["engine"]["state"] == "FAILED"
    script = (Path(found[0]["handle"]["data"]["script"])).read_text()
    assert "#SBATCH --array=0-3%2" in script


def test_max_failures_cancels_the_tasks_that_have_not_ended(mlp: Mlproject, slurm: Any) -> None:
    done = mlp("sweep", "-e", "slow", "--grid", "k=range:0:3:1", "--jobs", "2",
               "--max-failures", "1", "--backend", "slurm", "--json", timeout=240)
    assert done.returncode == 1, done.stderr
    data = json.loads(done.stdout)
    statuses = {p["parameters"]["k"]: p["status"] for p in data["points"]}
    assert statuses["0"] == "failed"
    assert set(statuses.values()) <= {"failed", "cancelled"} and "cancelled" in statuses.values()
    assert data["status"] == "stopped after 1 failures"
    assert not [j for j, row in slurm.jobs().items() if row["name"].startswith("mlproject-")]
