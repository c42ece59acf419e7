"""`mlproject run --detach`: the run ids at once, the pipeline run by a supervisor of its own,
records that never lie (queued, then running, then how it ended; a step that did not run says
why), a supervisor killed outright, and `runs` bringing an engine's step up to date
(state/reconcile.py). Real processes throughout: the local backend, and the file-backed fake
engine of tests/fakebackend.py behind tests/fakecli.py (docker's tests are test_docker_*)."""
from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

from conftest import git_init
from detached import Mlproject, alive, gated, kill, status_of, until
from fakebackend import Script, engine_calls, hold, release, states, write_scripts

PIPELINE = f"""
    name: detached
    entry_points:
      prep:
        command: "{gated('prep')}; echo rows > data.txt"
        outputs: [data.txt]
      train:
        needs: [prep]
        command: "{gated('train')}"
"""


def _local(project: Callable[..., Path], text: str = PIPELINE) -> Mlproject:
    # the test's flags are no part of the code (which the fingerprints hold)
    return Mlproject(git_init(project({"MLproject": text, ".gitignore": "go-*\npid-*\n"})))


def test_detach_prints_the_run_ids_at_once_and_the_pipeline_runs_in_order(
        project: Callable[..., Path], supervisors: list[int]) -> None:
    mlp = _local(project)
    started = time.monotonic()
    done = mlp("run", "-e", "train", "--detach")
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    ids = done.stdout.split()
    assert len(ids) == 2 and done.stdout == f"{ids[0]}\n{ids[1]}\n"
    # the whole command (an interpreter's start, the plan, the fork) while both steps block:
    # nothing of the supervisor holds the pipes this test reads to their end
    assert took < 3, took
    assert "supervised by process" in done.stderr
    supervisors.append(int(done.stderr.split("supervised by process ")[1].split()[0]))
    prep = status_of(mlp, "prep", "running")
    train = mlp.runs()["train"]
    assert (prep["id"], train["id"]) == tuple(ids)
    assert train["status"] == "queued" and train["reason"] == "waiting for prep"
    listed = mlp("runs").stdout
    assert "queued" in listed and "waiting for prep" in listed
    (mlp.root / "go-prep").touch()
    status_of(mlp, "train", "running")
    assert mlp.runs()["prep"]["status"] == "succeeded"
    (mlp.root / "go-train").touch()
    waited = mlp("wait", ids[1])
    assert waited.returncode == 0, waited.stderr
    rows = mlp.runs()
    assert [rows["prep"]["status"], rows["train"]["status"]] == ["succeeded", "succeeded"]
    assert (mlp.root / "data.txt").read_text() == "rows\n"
    assert json.loads((mlp.root / "mlproject.lock").read_text())  # recorded as `run` records
    # the supervisor's own output is kept
    log = next((mlp.root / ".mlproject" / "detached").glob("*.log")).read_text()
    assert "train: succeeded" in log and "start-train" in log


def test_a_failed_step_ends_its_dependants_queued_records_saying_why(
        project: Callable[..., Path], supervisors: list[int]) -> None:
    text = PIPELINE.replace(gated("prep"), gated("prep", code=3))
    mlp = _local(project, text)
    (mlp.root / "go-prep").touch()
    ids, pid = mlp.detach("-e", "train")
    supervisors.append(pid)
    prep = mlp("wait", ids[0])
    assert prep.returncode == 3, prep.stderr
    train = mlp("wait", ids[1])
    assert train.returncode == 130
    record = mlp.record(ids[1])
    assert record["status"] == "cancelled"
    assert record["reason"] == "not run: needs prep, which failed"
    assert "not run: needs prep, which failed" in train.stderr
    assert not (mlp.root / "pid-train").exists()  # it never started


def test_an_up_to_date_step_ends_its_queued_record_as_not_run_again(
        project: Callable[..., Path], supervisors: list[int]) -> None:
    mlp = _local(project)
    (mlp.root / "go-prep").touch()
    (mlp.root / "go-train").touch()
    first = mlp("run", "-e", "prep")
    assert first.returncode == 0, first.stderr
    made = mlp.runs()["prep"]["id"]
    ids, pid = mlp.detach("-e", "train")
    supervisors.append(pid)
    assert mlp("wait", ids[1]).returncode == 0
    waited = mlp("wait", ids[0])
    assert waited.returncode == 0
    record = mlp.record(ids[0])
    assert record["status"] == "succeeded" and record["exit_code"] == 0
    assert record["reason"] == (f"up to date: not run again (run {made} made its outputs); "
                                "--force runs it anyway")
    assert record["duration"] == 0.0


def test_a_plan_that_cannot_start_is_refused_in_the_foreground(
        project: Callable[..., Path]) -> None:
    mlp = _local(project, """
        name: refused
        entry_points:
          main:
            parameters: {src: path}
            command: "cat {src}"
    """)
    done = mlp("run", "-P", "src=missing.txt", "--detach")
    assert done.returncode == 2
    assert "cannot start" in done.stderr and "missing.txt does not exist" in done.stderr
    assert done.stdout == ""
    assert not (mlp.root / ".mlproject" / "runs").exists() or not any(
        (mlp.root / ".mlproject" / "runs").iterdir())
    assert mlp("run", "--detach", "--dry-run").returncode == 2


def test_a_supervisor_killed_outright_leaves_records_that_read_as_crashed(
        project: Callable[..., Path], supervisors: list[int]) -> None:
    mlp = _local(project)
    ids, pid = mlp.detach("-e", "train")
    supervisors.append(pid)
    status_of(mlp, "prep", "running")
    step = int(until(lambda: (mlp.root / "pid-prep").exists() and
                     (mlp.root / "pid-prep").read_text().strip()))
    kill(pid, signal.SIGKILL)
    # the step does not outlive its supervisor (the local backend's guard stops it)
    until(lambda: not alive(step), 15, "the step to stop")
    waited = mlp("wait", ids[0])
    assert waited.returncode == 5
    assert "crashed: the mlproject that supervised it" in waited.stderr
    assert mlp("wait", ids[1]).returncode == 5
    rows = mlp.runs()
    assert rows["prep"]["status"] == rows["train"]["status"] == "crashed"


def test_a_supervisor_asked_to_stop_records_every_step_honestly(
        project: Callable[..., Path], supervisors: list[int]) -> None:
    mlp = _local(project)
    ids, pid = mlp.detach("-e", "train")
    supervisors.append(pid)
    status_of(mlp, "prep", "running")
    kill(pid, signal.SIGTERM)
    assert mlp("wait", ids[0]).returncode == 130
    assert mlp("wait", ids[1]).returncode == 130
    assert mlp.record(ids[0])["status"] == "interrupted"
    train = mlp.record(ids[1])
    assert (train["status"], train["reason"]) == ("cancelled",
                                                  "not run: needs prep, which was interrupted")
    until(lambda: not alive(pid), 10, "the supervisor to end")


# -- the fake engine: steps an engine holds, asked about from other processes -------------------

FAKE = """
    name: engine
    entry_points:
      prep:
        command: "make data"
        outputs: [data.txt]
      train:
        needs: [prep]
        command: "train"
"""


def _fake(project: Callable[..., Path], tmp_path: Path, **scripts: Script) -> Mlproject:
    state = tmp_path / "engine"
    write_scripts(state, **scripts)
    return Mlproject(git_init(project({"MLproject": FAKE})), fake=state)


def _scripts() -> dict[str, Script]:
    return {"prep": Script(states("running", "succeeded"), logs=[b"p1\n", b"p2\n"],
                           writes={"data.txt": "rows"}),
            "train": Script(states("queued", "running", "succeeded"), logs=[b"", b"t1\n", b"t2\n"])}


def test_a_detached_pipeline_on_an_engine(project: Callable[..., Path], tmp_path: Path,
                                          supervisors: list[int]) -> None:
    mlp = _fake(project, tmp_path, **_scripts())
    assert mlp.fake is not None
    hold(mlp.fake, "prep")
    ids, pid = mlp.detach("-e", "train", "--backend", "fake")
    supervisors.append(pid)
    prep = status_of(mlp, "prep", "running")
    assert prep["id"] == ids[0] and mlp.runs()["train"]["status"] == "queued"
    shown = mlp.record(ids[0])
    assert shown["handle"]["backend"] == "fake" and shown["handle"]["id"] == f"job-{ids[0]}"
    release(mlp.fake, "prep")
    assert mlp("wait", ids[1]).returncode == 0
    assert mlp("logs", ids[1]).stdout == "t1\nt2\n"
    assert mlp("logs", ids[0]).stdout == "p1\np2\n"
    # the supervisor did the waiting: nobody else asked the engine, nor removed anything
    askers = {caller for method, _, caller in engine_calls(mlp.fake) if method == "status"}
    assert askers == {pid}
    assert not [c for c in engine_calls(mlp.fake) if c[0] == "cleanup"]


def test_runs_records_the_end_of_a_step_whose_supervisor_was_killed(
        project: Callable[..., Path], tmp_path: Path, supervisors: list[int]) -> None:
    mlp = _fake(project, tmp_path, **_scripts())
    assert mlp.fake is not None
    hold(mlp.fake, "prep")
    ids, pid = mlp.detach("-e", "train", "--backend", "fake")
    supervisors.append(pid)
    status_of(mlp, "prep", "running")
    kill(pid, signal.SIGKILL)
    until(lambda: not alive(pid), 10, "the supervisor to end")
    # the engine still holds prep: running, not crashed; train never will run: crashed
    rows = mlp.runs()
    assert rows["prep"]["status"] == "running" and rows["train"]["status"] == "crashed"
    release(mlp.fake, "prep")
    # two readers at once: one of them records the end, once
    readers = [mlp.popen("runs", "--json"), mlp.popen("runs", "show", ids[0])]
    for reader in readers:
        _out, err = reader.communicate(timeout=30)
        assert reader.returncode == 0, err
        assert "Traceback" not in err
    record = mlp.record(ids[0])
    assert record["status"] == "succeeded" and record["exit_code"] == 0
    assert record["outputs"]["data.txt"] is not None  # hashed, as the supervisor would have
    assert (mlp.root / ".mlproject" / "runs" / ids[0] / "log.txt").read_bytes() == b"p1\np2\n"
    assert json.loads((mlp.root / "mlproject.lock").read_text())
    # what the engine says of it, asked before its job is removed (each reader polled it)
    assert record["engine"]["job"] == f"job-{ids[0]}" and record["engine"]["polls"] >= 2
    methods = [c[0] for c in engine_calls(mlp.fake)]
    assert methods.count("cleanup") == 1
    assert methods.index("engine_facts") < methods.index("cleanup")
    # asked again: the record is final, the engine is not asked any more
    calls = len(engine_calls(mlp.fake))
    assert mlp.runs()["prep"]["status"] == "succeeded"
    assert len(engine_calls(mlp.fake)) == calls


def test_an_engine_that_cannot_be_asked_leaves_the_record_as_written(
        project: Callable[..., Path], tmp_path: Path, supervisors: list[int]) -> None:
    mlp = _fake(project, tmp_path, **_scripts())
    assert mlp.fake is not None
    hold(mlp.fake, "prep")
    ids, pid = mlp.detach("-e", "prep", "--backend", "fake")
    supervisors.append(pid)
    status_of(mlp, "prep", "running")
    kill(pid, signal.SIGKILL)
    until(lambda: not alive(pid), 10, "the supervisor to end")
    plain = Mlproject(mlp.root)  # an mlproject without the fake backend: it cannot be made
    for args in (["runs"], ["runs", "show", ids[0]], ["logs", ids[0]]):
        done = plain(*args)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        assert done.stderr.count("the fake backend cannot be made") == 1, done.stderr
        assert "unknown backend 'fake'" in done.stderr
    assert "running" in plain("runs").stdout
