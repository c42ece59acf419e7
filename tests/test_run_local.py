"""`mlproject run` on the local backend: real processes, real signals, real records."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import git_init, mlproject_process
from mlproject.runner.backends.local.cgroups import MemoryLimit
from mlproject.runner.state import records


def _only_record(root: Path) -> dict[str, Any]:
    found = records.list_runs(str(root))
    assert len(found) == 1, found
    return found[0]


def _alive(pid: int) -> bool:
    """Alive by state: a zombie is dead (PID 1 here does not always reap orphans)."""
    return records.process_start(pid) is not None


def _wait_for(path: Path, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"{path} was not written within {timeout}s")


ENV_PROBE = "python probe.py"
PROBE = """
import json, os, sys
prefixes = ("MLPROJECT_", "OMP_", "MKL_", "OPENBLAS_", "CUDA_")
json.dump({k: v for k, v in os.environ.items() if k.startswith(prefixes)}, open("env.json", "w"))
if "--metrics" in sys.argv:
    json.dump({"acc": 0.9, "nested": {"f1": 0.8}, "note": "text is skipped"}, open("metrics.json", "w"))
print("argv", sys.argv[1:])
print("to stderr", file=sys.stderr)
"""


def test_success_records_everything(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = git_init(project({"MLproject": """
        name: rec
        entry_points:
          main:
            parameters: {alpha: {type: float, default: 0.5}}
            resources: {cpu: 3}
            command: "python probe.py --metrics --alpha {alpha}"
            metrics: metrics.json
            outputs: [env.json]
    """, "probe.py": PROBE}))
    result = cli("run", str(root), "-P", "alpha=0.25")
    assert result.code == 0, result.err
    record = _only_record(root)
    run_dir = records.runs_dir(str(root)) / record["id"]
    assert record["format"] == "mlproject.run/5"
    assert record["status"] == "succeeded" and record["exit_code"] == 0
    assert record["entry_point"] == "main" and record["name"] == "rec"
    assert record["parameters"] == {"alpha": "0.25"}
    assert record["metrics"] == {"acc": 0.9, "nested.f1": 0.8}
    assert record["outputs"]["env.json"]["md5"] and record["outputs"]["env.json"]["nfiles"] == 1
    assert record["code"]["kind"] == "git" and record["code"]["commit"]
    assert record["fingerprint"] == record["plan"]["steps"][0]["fingerprint"]
    assert record["duration"] >= 0 and record["ended_at"] >= record["started_at"]
    assert record["mlproject_version"] and record["host"]["hostname"]
    assert record["resources"]["requested"]["cpu"] == 3
    log = (run_dir / "log.txt").read_text()
    assert "argv ['--metrics', '--alpha', '0.25']" in log and "to stderr" in log
    env = json.loads((root / "env.json").read_text())
    assert env["MLPROJECT_RUN_ID"] == record["id"]
    assert env["MLPROJECT_RUN_DIR"] == str(run_dir)
    assert env["MLPROJECT_ENTRY_POINT"] == "main"
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "3"
    assert "CUDA_VISIBLE_DEVICES" not in env  # no gpu declared: left as it was


def test_the_step_exit_code_is_mlproject_exit_code(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = project({"MLproject": """
        entry_points:
          main: {command: "echo partial > out.txt; exit 3", metrics: m.json, outputs: [out.txt]}
    """})
    assert cli("run", str(root)).code == 3
    record = _only_record(root)
    assert record["status"] == "failed" and record["exit_code"] == 3
    assert record["outputs"]["out.txt"]["md5"]  # what it left is hashed all the same
    assert record["metrics"] == {}


def test_a_command_that_does_not_exist(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = project({"MLproject": "entry_points: {main: {command: no-such-program-xyz}}\n"})
    assert cli("run", str(root)).code == 127
    assert _only_record(root)["status"] == "failed"


def test_missing_output_fails_the_run(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = project({"MLproject": "entry_points: {main: {command: 'true', outputs: [model.pkl]}}\n"})
    result = cli("run", str(root))
    assert result.code == 1
    record = _only_record(root)
    assert record["status"] == "failed"
    assert record["reason"] == "declared output not written: model.pkl"


def test_invalid_metrics_are_reported_not_fatal(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = project({"MLproject": "entry_points: {main: {command: 'echo {{ > m.json', metrics: m.json}}\n"})
    assert cli("run", str(root)).code == 0
    record = _only_record(root)
    assert record["metrics"] == {} and "m.json is not valid" in record["metrics_error"]


@pytest.mark.slow
def test_output_streams_while_the_step_runs(project: Callable[..., Path]) -> None:
    root = project({"MLproject": """
        entry_points:
          main:
            command: "python -c \\"import time; print('first', flush=True); time.sleep(3); print('second')\\""
    """})
    child = mlproject_process("run", ".", cwd=root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert child.stdout
    started = time.monotonic()
    first = child.stdout.readline()
    seen_after = time.monotonic() - started
    rest = child.stdout.read()
    assert child.wait(timeout=30) == 0
    assert first == b"first\n" and b"second" in rest
    assert seen_after < 2.5, "the first line only arrived at the end"


def _start_sleeper(root: Path, trap: str = "") -> subprocess.Popen[bytes]:
    """mlproject running a step whose grandchild writes its pid, then everything sleeps."""
    (root / "MLproject").write_text(
        "entry_points:\n  main:\n    command: \"" + trap +
        "python -c 'import os,time; open(\\\"grandchild.pid\\\",\\\"w\\\").write(str(os.getpid())); "
        "time.sleep(120)' & sleep 120; wait\"\n")
    return mlproject_process("run", ".", cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_whole_group_and_exits_130(project: Callable[..., Path], signum: int) -> None:
    root = project({})
    child = _start_sleeper(root)
    grandchild = int(_wait_for(root / "grandchild.pid"))
    sent = time.monotonic()
    child.send_signal(signum)
    code = child.wait(timeout=10)
    assert time.monotonic() - sent < 5
    assert code == 130
    time.sleep(0.2)
    assert not _alive(grandchild)
    record = _only_record(root)
    assert record["status"] == "interrupted" and record["exit_code"] == 130
    assert record["ended_at"] and record["duration"] is not None


@pytest.mark.slow
def test_a_step_that_ignores_signals_is_killed_within_5s(project: Callable[..., Path]) -> None:
    root = project({})
    child = _start_sleeper(root, trap="trap '' INT TERM; ")
    grandchild = int(_wait_for(root / "grandchild.pid"))
    sent = time.monotonic()
    child.send_signal(signal.SIGINT)
    assert child.wait(timeout=10) == 130
    assert time.monotonic() - sent < 5
    time.sleep(0.2)
    assert not _alive(grandchild)


@pytest.mark.slow
def test_timeout_stops_the_group(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = project({"MLproject": """
        resources: {timeout: 1s}
        entry_points:
          main: {command: "sleep 60 & sleep 60"}
    """})
    started = time.monotonic()
    assert cli("run", str(root)).code == 124
    assert time.monotonic() - started < 6
    record = _only_record(root)
    assert record["status"] == "timeout" and record["exit_code"] == 124
    assert "timeout" in (records.runs_dir(str(root)) / record["id"] / "log.txt").read_text()


def test_processes_left_behind_are_stopped(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = project({"MLproject": """
        entry_points:
          main: {command: "(sleep 120 & echo $! > bg.pid); echo started"}
    """})
    started = time.monotonic()
    assert cli("run", str(root)).code == 0
    assert time.monotonic() - started < 5
    time.sleep(0.2)
    assert not _alive(int((root / "bg.pid").read_text()))


def test_a_killed_mlproject_leaves_a_record_listed_as_crashed(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = project({})
    child = _start_sleeper(root)
    grandchild = int(_wait_for(root / "grandchild.pid"))
    try:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        on_disk = json.loads(next(records.runs_dir(str(root)).glob("*/run.json")).read_text())
        assert on_disk["status"] == "running"
        assert _only_record(root)["status"] == "crashed"
        listed = json.loads(cli("runs", "--json", cwd=root).out)
        assert listed[0]["status"] == "crashed"
    finally:
        if _alive(grandchild):  # the guard stops it (see test_supervision.py); never leak it
            os.kill(grandchild, signal.SIGKILL)


@pytest.mark.slow
def test_eight_concurrent_runs_leave_complete_distinct_records(project: Callable[..., Path]) -> None:
    root = git_init(project({"MLproject": """
        entry_points:
          main:
            parameters: {n: int}
            command: "echo run-{n}; python -c 'import time; time.sleep(0.5)'"
    """}))
    children = [mlproject_process("run", ".", "-P", f"n={i}", cwd=root,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for i in range(8)]
    assert [c.wait(timeout=60) for c in children] == [0] * 8
    found = records.list_runs(str(root))
    assert len({r["id"] for r in found}) == 8
    assert all(r["status"] == "succeeded" and r["ended_at"] for r in found)
    assert sorted(r["parameters"]["n"] for r in found) == [str(i) for i in range(8)]
    for run in found:
        log = (records.runs_dir(str(root)) / run["id"] / "log.txt").read_text()
        assert log == f"run-{run['parameters']['n']}\n"
    assert [r["id"] for r in found] == sorted(r["id"] for r in found)


def test_up_to_date_steps_are_skipped_until_something_changes(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = git_init(project({
        "MLproject": """
            entry_points:
              prep:
                command: "python -c \\"open('data.txt','w').write('d')\\""
                outputs: [data.txt]
              main:
                needs: [prep]
                command: "python -c \\"open('model.txt','w').write(open('data.txt').read() * 2)\\""
                outputs: [model.txt]
        """,
        ".gitignore": "data.txt\nmodel.txt\n",
    }))
    assert cli("run", str(root)).code == 0
    assert len(records.list_runs(str(root))) == 2
    again = cli("run", str(root))
    assert again.code == 0
    first_ids = [r["id"] for r in records.list_runs(str(root))]
    assert f"prep: up to date (run {first_ids[0]})" in again.err
    assert f"main: up to date (run {first_ids[1]})" in again.err
    assert len(records.list_runs(str(root))) == 2
    (root / "model.txt").write_text("tampered")
    third = cli("run", str(root))
    assert "prep: up to date" in third.err and "main: running" in third.err
    assert (root / "model.txt").read_text() == "dd"
    forced = cli("run", str(root), "--force")
    assert "up to date" not in forced.err
    assert len(records.list_runs(str(root))) == 5


def test_a_failed_run_never_makes_a_step_up_to_date(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = project({"MLproject": """
        entry_points:
          main: {command: "echo x > out.txt; exit 1", outputs: [out.txt]}
    """})
    assert cli("run", str(root)).code == 1
    assert "up to date" not in cli("run", str(root)).err
    assert len(records.list_runs(str(root))) == 2


def test_a_missing_path_parameter_stops_before_running(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = project({"MLproject": """
        entry_points:
          main: {parameters: {data: path}, command: "cat {data}"}
    """})
    result = cli("run", str(root), "-P", "data=nowhere.csv", cwd=root)
    assert result.code == 2
    assert f"parameter data (path): {root / 'nowhere.csv'} does not exist" in result.err
    assert not records.runs_dir(str(root)).exists()
    (root / "here.csv").write_text("a,b\n")
    assert cli("run", str(root), "-P", "data=here.csv", cwd=root).code == 0


def test_runs_lists_and_shows(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = project({"MLproject": """
        entry_points:
          main: {command: "echo '{{\\"loss\\": 0.5}}' > m.json", metrics: m.json}
          bad: {command: "exit 4"}
    """})
    cli("run", str(root))
    cli("run", str(root), "-e", "bad")
    listed = cli("runs", "--json", cwd=root)
    runs = json.loads(listed.out)
    assert [(r["entry_point"], r["status"]) for r in runs] == [("main", "succeeded"), ("bad", "failed")]
    assert runs[0]["metrics"] == {"loss": 0.5} and runs[0]["duration"] >= 0
    assert {"id", "entry_point", "status", "duration", "metrics"} <= set(runs[0])
    table = cli("runs", cwd=root).out
    assert "loss=0.5" in table and "failed" in table
    shown = cli("runs", "show", runs[1]["id"][:22], cwd=root)
    assert shown.code == 0 and "bad failed" in shown.out and "exit_code: 4" in shown.out
    full = json.loads(cli("runs", "show", runs[0]["id"], "--json", cwd=root).out)
    assert full["id"] == runs[0]["id"] and full["plan"]["steps"]
    assert cli("runs", "show", "nope", cwd=root).code == 2


def test_state_dir_ignores_itself_in_git(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = git_init(project({"MLproject": "entry_points: {main: {command: 'true'}}\n"}))
    assert cli("run", str(root)).code == 0
    status = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True)
    assert status.stdout == "?? mlproject.lock\n"  # the lock is for Git; the records are not


# GPUs: this machine has none, so what can be tested for real is the refusal and the choice of
# devices among those CUDA_VISIBLE_DEVICES makes visible (as a scheduler such as Slurm sets it).

GPU_PROJECT = {"MLproject": f"""
    entry_points:
      main: {{parameters: {{n: int}}, resources: {{gpu: 1}}, command: '{ENV_PROBE}'}}
      two: {{resources: {{gpu: 2}}, command: '{ENV_PROBE}'}}
      none: {{resources: {{gpu: 0}}, command: '{ENV_PROBE}'}}
""", "probe.py": PROBE}


def test_gpu_refused_when_fewer_are_visible(cli: Callable[..., Any], project: Callable[..., Path],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    root = project(GPU_PROJECT)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    result = cli("run", str(root), "-e", "two")
    assert result.code == 2
    assert "entry point 'two' asks for 2 GPUs, but 0 are visible on this machine" in result.err
    assert not records.runs_dir(str(root)).exists()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    assert "but 1 is visible" in cli("run", str(root), "-e", "two").err


def test_gpu_devices_are_chosen_from_the_visible_ones(cli: Callable[..., Any], project: Callable[..., Path],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    root = project(GPU_PROJECT)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5,7")
    assert cli("run", str(root), "-e", "two").code == 0
    assert json.loads((root / "env.json").read_text())["CUDA_VISIBLE_DEVICES"] == "3,5"
    assert cli("run", str(root), "-e", "none").code == 0
    assert json.loads((root / "env.json").read_text())["CUDA_VISIBLE_DEVICES"] == ""
    enforced = records.list_runs(str(root))[-1]["resources"]["enforced"]
    assert enforced["gpu"] == "CUDA_VISIBLE_DEVICES="


@pytest.mark.skipif(subprocess.run(["sh", "-c", "command -v nvidia-smi"], capture_output=True).returncode != 0,
                    reason="no NVIDIA GPU (nvidia-smi) on this machine")
def test_gpu_on_a_real_gpu_machine(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = project(GPU_PROJECT)
    assert cli("run", str(root), "-P", "n=1").code == 0
    assert json.loads((root / "env.json").read_text())["CUDA_VISIBLE_DEVICES"] == "0"


def _cgroup_usable() -> str | None:
    limit, why = MemoryLimit.create(f"mlproject-probe-{os.getpid()}", 2**30)
    if limit:
        limit.remove()
        return None
    return why


@pytest.mark.skipif(_cgroup_usable() is not None, reason=f"no writable memory cgroup here: {_cgroup_usable()}")
def test_memory_limit_is_enforced_by_a_cgroup(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = project({"MLproject": """
        entry_points:
          hog:
            resources: {memory: 64Mi}
            command: "python -c \\"x = bytearray(512 * 1024 * 1024); print('survived')\\""
          fits:
            resources: {memory: 256Mi}
            command: "python -c \\"x = bytearray(32 * 1024 * 1024); print('fine')\\""
    """})
    assert cli("run", str(root), "-e", "hog").code == 137
    hog = records.list_runs(str(root))[-1]
    assert hog["status"] == "oom"
    assert hog["reason"] == "killed: memory limit 64Mi exceeded"
    assert hog["resources"]["enforced"]["memory"].startswith("cgroup v")
    assert cli("run", str(root), "-e", "fits").code == 0
    fits = records.list_runs(str(root))[-1]
    assert 32 * 2**20 < fits["resources"]["peak_memory"] <= 256 * 2**20


def test_memory_limit_not_enforceable_is_reported(cli: Callable[..., Any], project: Callable[..., Path],
                                                  monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Point the cgroup roots at plain directories: the OS refuses nothing, there is just no
    # controller, exactly as on a machine without cgroups.
    from mlproject.runner.backends.local import cgroups as limits

    monkeypatch.setattr(limits, "_V1", tmp_path / "no-v1")
    monkeypatch.setattr(limits, "_V2", tmp_path / "no-v2")
    root = project({"MLproject": "entry_points: {main: {resources: {memory: 1Gi}, command: 'true'}}\n"})
    result = cli("run", str(root))
    assert result.code == 0
    assert "warning: memory limit 1Gi not enforced" in result.err
    enforced = _only_record(root)["resources"]["enforced"]["memory"]
    assert enforced.startswith("not enforced: cgroup v1: no memory controller")


def test_python_in_the_command_is_the_current_interpreter(cli: Callable[..., Any], project: Callable[..., Path]) -> None:
    root = project({"MLproject": """
        entry_points:
          main: {command: "python -c \\"import sys; open('exe.txt','w').write(sys.prefix)\\""}
    """})
    assert cli("run", str(root)).code == 0
    assert (root / "exe.txt").read_text() == sys.prefix


def test_ctrl_c_reaches_the_step_as_keyboard_interrupt(project: Callable[..., Path]) -> None:
    root = project({"MLproject": """
        entry_points:
          main:
            command: "python train.py"
    """, "train.py": """
        import time
        open("started", "w").write("1")
        try:
            time.sleep(60)
        except KeyboardInterrupt:
            open("checkpoint", "w").write("saved")
            raise
    """})
    child = mlproject_process("run", ".", cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(root / "started")
    child.send_signal(signal.SIGINT)
    assert child.wait(timeout=10) == 130
    assert (root / "checkpoint").read_text() == "saved"
    assert _only_record(root)["status"] == "interrupted"


@pytest.mark.slow
def test_a_second_ctrl_c_does_not_wait_for_the_grace_period(project: Callable[..., Path]) -> None:
    root = project({})
    child = _start_sleeper(root, trap="trap '' INT TERM; ")
    grandchild = int(_wait_for(root / "grandchild.pid"))
    child.send_signal(signal.SIGINT)
    time.sleep(0.3)
    sent = time.monotonic()
    child.send_signal(signal.SIGINT)
    assert child.wait(timeout=10) == 130
    assert time.monotonic() - sent < 1.5
    time.sleep(0.2)
    assert not _alive(grandchild)
