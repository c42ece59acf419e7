"""`mlproject logs ID [-f]`, `cancel ID` and `wait ID`, for every backend (the local one, and
the file-backed fake engine standing for docker and its like), as real processes against runs
that `run --detach` started: what each says, and the codes they exit with."""
from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import git_init
from detached import Mlproject, alive, gated, kill, status_of, until
from fakebackend import Script, engine_calls, hold, release, states, write_scripts

PIPELINE = f"""
    name: verbs
    entry_points:
      prep:
        command: "{gated('prep')}; echo rows > data.txt"
        outputs: [data.txt]
      train:
        needs: [prep]
        command: "{gated('train')}"
      slow:
        command: "sleep 30"
        resources: {{timeout: 0.5s}}
"""


@pytest.fixture
def mlp(project: Callable[..., Path]) -> Mlproject:
    return Mlproject(git_init(project({"MLproject": PIPELINE, ".gitignore": "go-*\npid-*\n"})))


def _lines(stream: object) -> list[str]:
    """Lines of a process's pipe as they come (read in a thread)."""
    got: list[str] = []

    def read() -> None:
        for line in stream:  # type: ignore[attr-defined]
            got.append(line)

    threading.Thread(target=read, daemon=True).start()
    return got


def test_cancel_stops_the_running_step_and_its_dependants_never_start(
        mlp: Mlproject, supervisors: list[int]) -> None:
    ids, pid = mlp.detach("-e", "train")
    supervisors.append(pid)
    status_of(mlp, "prep", "running")
    step = int(until(lambda: (mlp.root / "pid-prep").exists()
                     and (mlp.root / "pid-prep").read_text().strip()))
    done = mlp("cancel", ids[0])
    assert done.returncode == 0, done.stderr
    assert done.stderr.endswith(f"run {ids[0]} (prep): cancelled\n"), done.stderr
    assert not alive(step)
    waited = mlp("wait", ids[0])
    assert waited.returncode == 130
    assert mlp.record(ids[0])["status"] == "cancelled"
    assert mlp("wait", ids[1]).returncode == 130
    assert mlp.record(ids[1])["reason"] == "not run: needs prep, which was cancelled"
    # cancelling what has ended says so, and is no error: it does not run, as asked
    again = mlp("cancel", ids[0])
    assert again.returncode == 0
    assert f"run {ids[0]} (prep) has already ended: cancelled, exit code 130" in again.stderr


def test_a_cancelled_queued_step_never_starts(mlp: Mlproject, supervisors: list[int]) -> None:
    ids, pid = mlp.detach("-e", "train")
    supervisors.append(pid)
    status_of(mlp, "prep", "running")
    done = mlp("cancel", ids[1])
    assert done.returncode == 0
    assert "is queued: cancelled, it will not start" in done.stderr
    assert "cancel requested" in mlp("runs").stdout
    assert "(cancel requested)" in mlp("runs", "show", ids[1]).stdout
    (mlp.root / "go-prep").touch()
    assert mlp("wait", ids[0]).returncode == 0  # what was not cancelled runs on
    waited = mlp("wait", ids[1])
    assert waited.returncode == 130
    assert mlp.record(ids[1])["reason"] == "cancelled before it started"
    assert not (mlp.root / "pid-train").exists()


def test_logs_follows_the_output_as_it_comes_and_waits_for_a_queued_step(
        mlp: Mlproject, supervisors: list[int]) -> None:
    ids, pid = mlp.detach("-e", "train")
    supervisors.append(pid)
    status_of(mlp, "prep", "running")
    follower = mlp.popen("logs", ids[1][:20], "-f")
    out, err = _lines(follower.stdout), _lines(follower.stderr)
    until(lambda: err, 20, "logs -f to say why it waits")
    assert f"run {ids[1]} (train) is queued: waiting for prep; its output follows as it comes" in err[0]
    assert out == []
    # without -f: what there is, and why there is nothing
    now = mlp("logs", ids[1])
    assert now.returncode == 0 and now.stdout == ""
    assert "queued: waiting for prep (no output yet; -f waits for it)" in now.stderr
    (mlp.root / "go-prep").touch()
    until(lambda: out, 20, "the first line of train")
    assert out == ["start-train\n"]  # while the step still runs
    assert follower.poll() is None
    (mlp.root / "go-train").touch()
    assert follower.wait(timeout=30) == 0
    time.sleep(0.2)  # the reader threads take the last lines
    assert out == ["start-train\n", "end-train\n"]
    assert err[-1] == f"mlproject: run {ids[1]} (train): succeeded, exit code 0\n"
    assert mlp("logs", ids[0]).stdout == "start-prep\nend-prep\n"


def test_wait_exits_with_the_steps_code(mlp: Mlproject, supervisors: list[int]) -> None:
    ids, pid = mlp.detach("-e", "slow")
    supervisors.append(pid)
    waited = mlp("wait", ids[0])
    assert waited.returncode == 124
    assert f"run {ids[0]} (slow): timeout, exit code 124" in waited.stderr
    assert "timeout" in mlp("runs").stdout


def test_ids_name_runs_by_a_unique_prefix_and_nothing_else(
        mlp: Mlproject, supervisors: list[int]) -> None:
    (mlp.root / "go-prep").touch()
    (mlp.root / "go-train").touch()
    ids, pid = mlp.detach("-e", "train")
    supervisors.append(pid)
    assert mlp("wait", ids[1][:-2]).returncode == 0
    common = ids[0][:10]  # both start with the date
    for verb in ("logs", "wait", "cancel"):
        ambiguous = mlp(verb, common)
        assert ambiguous.returncode == 2
        assert f"run id prefix {common!r} is ambiguous: 2 runs start with it" in ambiguous.stderr
        unknown = mlp(verb, "nosuchrun")
        assert unknown.returncode == 2
        assert "mlproject: error: no run 'nosuchrun' in ." in unknown.stderr
        outside = mlp(verb, "../x")
        assert outside.returncode == 2 and "without '/'" in outside.stderr
    (mlp.root / ".mlproject" / "runs" / ids[0] / "run.json").write_text("{not json")
    for verb in ("logs", "wait", "cancel"):
        corrupt = mlp(verb, ids[0])
        assert corrupt.returncode == 2
        assert f"run {ids[0]}: run.json is not valid JSON" in corrupt.stderr
        assert "Traceback" not in corrupt.stderr
    assert "corrupt" in mlp("runs").stdout


def test_the_verbs_outside_a_project(tmp_path: Path) -> None:
    plain = Mlproject(tmp_path)
    for verb in ("logs", "wait", "cancel"):
        done = plain(verb, "x")
        assert done.returncode == 2
        assert "not a project" in done.stderr


# -- the fake engine ------------------------------------------------------------------------------

ENGINE = """
    name: engine
    entry_points:
      main:
        command: "train"
"""


@pytest.fixture
def engine(project: Callable[..., Path], tmp_path: Path) -> Mlproject:
    return Mlproject(git_init(project({"MLproject": ENGINE})), fake=tmp_path / "engine")


def test_logs_follows_an_engines_step(engine: Mlproject, supervisors: list[int]) -> None:
    assert engine.fake is not None
    write_scripts(engine.fake, main=Script(states("running", "running", "running", "succeeded"),
                                           logs=[b"one\n", b"two\n", b"three\n"]))
    hold(engine.fake, "main")
    ids, pid = engine.detach("--backend", "fake")
    supervisors.append(pid)
    status_of(engine, "main", "running")
    follower = engine.popen("logs", ids[0], "-f")
    out = _lines(follower.stdout)
    until(lambda: out, 20, "the first line")
    assert out == ["one\n"] and follower.poll() is None
    release(engine.fake, "main")
    assert follower.wait(timeout=30) == 0
    time.sleep(0.2)
    assert out == ["one\n", "two\n", "three\n"]


def test_an_engines_oom_and_failure_codes(engine: Mlproject, supervisors: list[int]) -> None:
    assert engine.fake is not None
    write_scripts(engine.fake, main=Script(states("running", "oom")))
    ids, pid = engine.detach("--backend", "fake")
    supervisors.append(pid)
    waited = engine("wait", ids[0])
    assert waited.returncode == 137
    assert "oom" in engine("runs").stdout
    assert f"run {ids[0]}: main oom" in engine("runs", "show", ids[0]).stdout
    write_scripts(engine.fake, main=Script(states("running", "failed", exit_code=7)))
    again, pid = engine.detach("--backend", "fake", "--force")
    supervisors.append(pid)
    assert engine("wait", again[0]).returncode == 7


def test_cancel_asks_the_engine_itself_when_the_supervisor_is_gone(
        engine: Mlproject, supervisors: list[int]) -> None:
    assert engine.fake is not None
    write_scripts(engine.fake, main=Script(states("running", "succeeded"), logs=[b"a\n"]))
    hold(engine.fake, "main")
    ids, pid = engine.detach("--backend", "fake")
    supervisors.append(pid)
    status_of(engine, "main", "running")
    kill(pid, signal.SIGKILL)
    until(lambda: not alive(pid), 10, "the supervisor to end")
    done = engine("cancel", ids[0])
    assert done.returncode == 0, done.stderr
    assert done.stderr.endswith(f"run {ids[0]} (main): cancelled\n"), done.stderr
    cancels = [c for c in engine_calls(engine.fake) if c[0] == "cancel"]
    assert len(cancels) == 1 and cancels[0][2] != pid  # the cancel verb asked the engine
    record = engine.record(ids[0])
    assert record["status"] == "cancelled" and record["exit_code"] == 130
    assert record["reason"] == "cancelled (mlproject cancel)"
    assert engine("wait", ids[0]).returncode == 130
    assert [c[0] for c in engine_calls(engine.fake)].count("cleanup") == 1


def test_a_step_the_engine_lost_ends_failed_with_the_engines_reason(
        engine: Mlproject, supervisors: list[int]) -> None:
    assert engine.fake is not None
    write_scripts(engine.fake, main=Script(states("running", "succeeded")))
    hold(engine.fake, "main")
    ids, pid = engine.detach("--backend", "fake")
    supervisors.append(pid)
    status_of(engine, "main", "running")
    waiter = engine.popen("wait", ids[0])
    err = _lines(waiter.stderr)
    until(lambda: err, 20, "wait to say what it waits for")
    assert f"waiting for run {ids[0]} (main): running" in err[0]
    # the engine loses the job (the supervisor, or `wait` once it is killed, reads that end)
    (engine.fake / "jobs" / f"job-{ids[0]}.json").write_text(
        (engine.fake / "jobs" / f"job-{ids[0]}.json").read_text().replace(
            '"removed": false', '"removed": true'))
    kill(pid, signal.SIGKILL)
    assert waiter.wait(timeout=30) == 1
    record = engine.record(ids[0])
    assert record["status"] == "failed"
    assert record["reason"] == "the engine has no such job any more"
