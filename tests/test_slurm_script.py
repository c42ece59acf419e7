"""The slurm backend without a cluster: the sbatch script a step becomes (script.py, pure), how
Slurm's `scontrol -o` lines are read (ctl.py), how job states map to statuses (states.py), and
what preflight says where Slurm's commands or controller are missing. Runs everywhere."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Result, git_init
from mlproject.runner.backends.base import Handle, RunContext
from mlproject.runner.backends.slurm import script, states
from mlproject.runner.backends.slurm.backend import SlurmBackend, _short_of
from mlproject.runner.backends.slurm.ctl import duration, exit_code, fields, gpus
from mlproject.runner.backends.slurm.settings import SETTINGS
from mlproject.runner.plan import Plan, Step
from mlproject.runner.state.status import Status

DEFAULTS = {key: s.default for key, s in SETTINGS.items()}

TEXT = """
    name: hpc
    entry_points:
      train:
        command: "python3 train.py"
        resources: {cpu: 2.5, memory: 1.5Gi, gpu: 1, timeout: 90}
      plain:
        command: "echo hi"
"""


def _plan(cli: Callable[..., Result], root: Path, entry: str) -> Plan:
    done = cli("plan", str(root), "-e", entry, "--json")
    assert done.code == 0, done.err
    return Plan.from_json(json.loads(done.out))


def _step(cli: Callable[..., Result], project: Callable[..., Path],
          entry: str = "train") -> tuple[Step, Path]:
    root = git_init(project({"MLproject": TEXT, "train.py": "print(1)\n"}))
    return _plan(cli, root, entry).steps[-1], root


def _ctx(root: Path, run_id: str = "R1", after: tuple[Handle, ...] = ()) -> RunContext:
    run_dir = root / ".mlproject" / "runs" / run_id
    return RunContext(run_id, run_dir, str(root), {"MLPROJECT_RUN_ID": run_id,
                                                   "MLPROJECT_RUN_DIR": str(run_dir)},
                      after=after)


def test_the_script_holds_every_directive_the_step_asks_for(cli: Callable[..., Result],
                                                            project: Callable[..., Path]) -> None:
    step, root = _step(cli, project)
    settings = {**DEFAULTS, "partition": "gpu", "account": "ml", "qos": "high",
                "directives": ["--constraint=a100", "--exclusive"], "time_margin": 30.0}
    sub = SlurmBackend(settings).prepare(step, _ctx(root))
    run_dir = root / ".mlproject" / "runs" / "R1"
    lines = (sub.script or "").splitlines()
    assert lines[0] == "#!/bin/sh"
    sbatch = [line.removeprefix("#SBATCH ") for line in lines if line.startswith("#SBATCH ")]
    assert sbatch == [
        "--job-name=mlproject-R1", "--comment=mlproject:R1", f"--chdir={root}",
        f"--output={run_dir}/log.txt", f"--error={run_dir}/log.txt", "--open-mode=append",
        "--nodes=1", "--ntasks=1", "--no-requeue", "--cpus-per-task=3", "--mem=1536M",
        "--gres=gpu:1", "--time=2", "--partition=gpu", "--account=ml", "--qos=high",
        "--export=ALL,MLPROJECT_WORKER_REQUEST,PYTHONUNBUFFERED", "--constraint=a100",
        "--exclusive"]
    assert lines[-1].startswith("exec ") and lines[-1].endswith(" -m mlproject.runner.worker")
    assert sub.argv == ("sbatch", "--parsable", f"{run_dir}/job.sbatch")
    assert sub.log == f"{run_dir}/log.txt" and sub.timeout is None  # the worker keeps it
    assert "--time=2" in sub.enforcement["timeout"] and "90s" in sub.enforcement["timeout"]
    assert any("cpu 2.5" in note for note in sub.notes)
    assert sub.env["MLPROJECT_WORKER_REQUEST"] not in (sub.script or "")  # values never shown


def test_upstream_handles_become_an_afterok_dependency(cli: Callable[..., Result],
                                                       project: Callable[..., Path]) -> None:
    step, root = _step(cli, project, "plain")
    after = (Handle("slurm", "A", "41"), Handle("slurm", "B", "42"))
    sub = SlurmBackend().prepare(step, _ctx(root, after=after))
    assert "#SBATCH --dependency=afterok:41:42" in (sub.script or "")
    assert "#SBATCH --kill-on-invalid-dep=yes" in (sub.script or "")
    alone = SlurmBackend().prepare(step, _ctx(root)).script or ""
    assert "--dependency" not in alone and "--mem" not in alone and "--time" not in alone


def test_plan_shows_the_script_with_placeholders(cli: Callable[..., Result],
                                                 project: Callable[..., Path]) -> None:
    step, root = _step(cli, project)
    sub = SlurmBackend().prepare(step, RunContext.for_plan(str(root)))
    assert "#SBATCH --job-name=mlproject-RUN_ID" in (sub.script or "")
    assert "--time=7" in (sub.script or "")  # 90 s + the default 300 s margin: 6.5 -> 7 minutes


def test_no_export_of_mlproject_s_environment_lists_only_the_step_s(
        cli: Callable[..., Result], project: Callable[..., Path]) -> None:
    step, root = _step(cli, project, "plain")
    sub = SlurmBackend({**DEFAULTS, "export_env": False}).prepare(step, _ctx(root))
    assert "#SBATCH --export=MLPROJECT_WORKER_REQUEST,PYTHONUNBUFFERED" in (sub.script or "")
    assert sub.inherits_env is False


def test_time_and_memory_are_rounded_up() -> None:
    assert [script.minutes(s) for s in (0.5, 60, 60.5, 119, 3600)] == [1, 1, 2, 2, 60]
    assert [script.mebibytes(b) for b in (1, 2**20, 2**20 + 1, 3 * 2**30)] == [1, 1, 2, 3072]


def test_scontrol_lines_are_read_with_values_that_hold_spaces() -> None:
    line = ("NodeName=n1 Arch=x86_64 CPUTot=2 Gres=gpu:a100:4(S:0-1) OS=Linux 6.1 #1 SMP "
            "PREEMPT_DYNAMIC RealMemory=2048 AllocNode:Sid=localhost:12 CPUs/Task=1 Reason=None")
    got = fields(line)
    assert got["OS"] == "Linux 6.1 #1 SMP PREEMPT_DYNAMIC" and got["RealMemory"] == "2048"
    assert got["AllocNode:Sid"] == "localhost:12" and got["CPUs/Task"] == "1"
    assert gpus(got["Gres"]) == 4 and gpus("gpu:2,gpu:v100:1") == 3 and gpus("(null)") == 0
    assert exit_code("3:0") == (3, 0) and exit_code("0:9") == (0, 9) and exit_code("") == (None, None)
    assert duration("1-02:03:04") == 93784 and duration("00:01:00") == 60 and duration("5") == 300
    assert duration("UNLIMITED") is None


@pytest.mark.parametrize(("job", "tail", "status", "code"), [
    ({"JobState": "PENDING", "Reason": "Resources"}, b"", Status.QUEUED, None),
    ({"JobState": "RUNNING", "Reason": "None"}, b"", Status.RUNNING, None),
    ({"JobState": "COMPLETING", "ExitCode": "0:0"}, b"", Status.RUNNING, None),
    ({"JobState": "COMPLETED", "ExitCode": "0:0"}, b"", Status.SUCCEEDED, 0),
    ({"JobState": "FAILED", "ExitCode": "3:0", "Reason": "NonZeroExitCode"}, b"",
     Status.FAILED, 3),
    ({"JobState": "FAILED", "ExitCode": "0:9", "Reason": "JobLaunchFailure"}, b"",
     Status.FAILED, 137),
    ({"JobState": "FAILED", "ExitCode": "0:9", "Reason": "JobLaunchFailure",
      "MinMemoryNode": "50M"}, b"slurmstepd: error: Exceeded job memory limit\n", Status.OOM, 137),
    ({"JobState": "OUT_OF_MEMORY", "ExitCode": "0:125"}, b"", Status.OOM, 137),
    ({"JobState": "TIMEOUT", "ExitCode": "0:15", "TimeLimit": "00:01:00"}, b"",
     Status.TIMEOUT, 0),
    ({"JobState": "CANCELLED", "ExitCode": "0:15", "Reason": "None"}, b"", Status.CANCELLED, 0),
    ({"JobState": "CANCELLED", "Reason": "DependencyNeverSatisfied"}, b"", Status.CANCELLED,
     None),
    ({"JobState": "NODE_FAIL", "ExitCode": "0:0"}, b"", Status.FAILED, 1),
    ({"State": "CANCELLED by 0", "ExitCode": "0:15"}, b"", Status.CANCELLED, 0),  # sacct's
])
def test_job_states_map_to_statuses(job: dict[str, str], tail: bytes, status: Status,
                                    code: int | None) -> None:
    state = states.state_of(job, tail)
    assert state.status == status
    assert state.exit_code == code


def test_a_pending_job_says_slurm_s_reason() -> None:
    state = states.state_of({"JobState": "PENDING", "Reason": "Dependency"})
    assert state.reason == "Slurm: Dependency (waiting for the upstream steps' jobs to succeed)"
    assert "DependencyNeverSatisfied" in (states.state_of(
        {"JobState": "CANCELLED", "Reason": "DependencyNeverSatisfied"}).reason or "")
    assert states.state_of({"JobState": "PENDING", "Reason": "AssocGrpGRES"}).reason == \
        "Slurm: AssocGrpGRES"


def test_what_no_node_of_a_partition_has_is_named(cli: Callable[..., Result],
                                                  project: Callable[..., Path]) -> None:
    step, _ = _step(cli, project)  # cpu 2.5 -> 3, 1.5Gi, 1 GPU, 90 s
    partition = {"PartitionName": "debug", "MaxTime": "00:05:00", "MaxCPUsPerNode": "UNLIMITED",
                 "MaxMemPerNode": "UNLIMITED"}
    small = [{"NodeName": "n1", "CPUTot": "2", "RealMemory": "1024", "Gres": "(null)"}]
    short = _short_of(step, partition, small, 300.0)
    assert len(short) == 4, short
    assert "MaxTime is 00:05:00" in short[0] and "at most 2 (CPUTot)" in short[1]
    assert "at most 1024M (RealMemory)" in short[2] and "at most 0 (Gres=(null))" in short[3]
    big = [*small, {"NodeName": "n2", "CPUTot": "8", "RealMemory": "8192", "Gres": "gpu:2"}]
    assert _short_of(step, {**partition, "MaxTime": "UNLIMITED"}, big, 300.0) == []


def test_slurm_s_commands_missing_is_a_problem_with_the_fix(
        cli: Callable[..., Result], project: Callable[..., Path], tmp_path: Path) -> None:
    step, _ = _step(cli, project)
    empty = tmp_path / "bin"
    empty.mkdir()
    said = SlurmBackend({**DEFAULTS, "bin": str(empty)}).preflight(step, "/")
    assert len(said) == 1 and "sbatch, scontrol, scancel are not found in" in said[0]
    assert "`bin` setting" in said[0]


def test_a_slurm_conf_that_names_no_file_is_said_at_once(
        cli: Callable[..., Result], project: Callable[..., Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    step, _ = _step(cli, project)
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool in ("sbatch", "scontrol", "scancel"):  # present, never run
        (fake / tool).write_text("#!/bin/sh\nexit 99\n")
        (fake / tool).chmod(0o755)
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "nope.conf"))
    said = SlurmBackend({**DEFAULTS, "bin": str(fake)}).preflight(step, "/")
    assert len(said) == 1 and f"SLURM_CONF={tmp_path / 'nope.conf'} names no file" in said[0]


def test_the_backend_is_registered_with_its_settings(cli: Callable[..., Result]) -> None:
    from mlproject.runner import backends

    assert "slurm" in backends.names()
    assert set(backends.settings_of("slurm")) == set(SETTINGS)
    assert backends.get("slurm").capabilities.chains_steps is True


@pytest.mark.parametrize("where", ["directive", "partition", "project path"])
def test_a_line_break_never_reaches_the_batch_script(
        where: str, cli: Callable[..., Result], project: Callable[..., Path]) -> None:
    """A value with a line break would end its #SBATCH line and run the rest as shell: the
    step is refused at submit (exit 2) with why, and the script holds no such line."""
    from mlproject.runner.backends.base import SubmitError

    step, root = _step(cli, project, "plain")
    settings = dict(DEFAULTS)
    ctx = _ctx(root)
    if where == "directive":
        settings["directives"] = ["--exclusive\necho injected > /tmp/pwned"]
    elif where == "partition":
        settings["partition"] = "debug\ntouch /tmp/pwned"
    else:
        ctx = RunContext(ctx.run_id, ctx.run_dir, f"{ctx.cwd}\ntouch /tmp/pwned", ctx.env)
    backend = SlurmBackend(settings)
    sub = backend.prepare(step, ctx)
    # nothing but comments: no line of it would run
    assert all(line.startswith("#") for line in (sub.script or "").splitlines()), sub.script
    assert any(note.startswith("cannot start:") for note in sub.notes), sub.notes
    with pytest.raises(SubmitError) as refused:
        backend.submit(sub)
    assert refused.value.exit_code == 2
    assert not (ctx.run_dir / script.SCRIPT).exists()
