"""The mlproject worker (runner/worker/): what Slurm, Kubernetes and Ray run for a step, run
here as real processes the way an engine starts it (the request in its variable), with a shared
run directory (Slurm) and without one (the code shipped as an archive, the report and outputs
brought back in the log), and its report read by the submitting side: also when the worker's
input is hostile (a request of the wrong shape, a bundle that reaches out of the project)."""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Result, git, git_init
from mlproject.runner import worker
from mlproject.runner.backends.base import Outcome, RunContext, Submission
from mlproject.runner.plan import Plan
from mlproject.runner.state.status import Status
from mlproject.runner.worker import bundle, codeship
from mlproject.runner.worker.request import WorkerRequest
from mlproject.runner.worker.result import NO_REPORT, WorkerResult

SPEC = """
    name: w
    entry_points:
      prep:
        parameters: {n: {type: float, default: 3}}
        command: "python -c \\"import os; os.makedirs('out', exist_ok=True); open('out/data.txt','w').write('n={n}'); open('model.txt','w').write(os.environ['MLPROJECT_RUN_DIR']); print('made', {n})\\""
        outputs: [out, model.txt]
      train:
        needs: [prep]
        command: "python -c \\"print(open('out/data.txt').read())\\""
        outputs: [trained.txt]
      fail:
        command: "echo failing; exit 3"
      slow:
        resources: {timeout: 1}
        command: "sleep 30"
      wait:
        command: "echo started; sleep 30"
"""


def _plan(cli: Callable[..., Result], root: Path, entry: str) -> Plan:
    result = cli("plan", str(root), "-e", entry, "--json")
    assert result.code == 0, result.err
    return Plan.from_json(json.loads(result.out))


def _request(plan: Plan, entry: str, run_id: str, *, shared: bool) -> tuple[str, Path]:
    run_dir = Path(plan.project) / ".mlproject" / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    step = next(s for s in plan.steps if s.entry_point == entry)
    return worker.request_for(step, RunContext(run_id, run_dir, plan.project, {}, plan=plan),
                              shared=shared), run_dir


def _worker(request: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*worker.argv(sys.executable), *args], cwd=cwd, capture_output=True,
                          env={**os.environ, worker.REQUEST_VAR: request}, timeout=120)


def _submission(run_dir: Path, request: str) -> Submission:
    from mlproject.spec.model import Resources

    return Submission("engine", "prep", run_dir.name, (), "/", {worker.REQUEST_VAR: request},
                      Resources(), {}, str(run_dir / "log.txt"))


def test_shared_the_worker_runs_the_step_in_the_project_and_reports_into_the_run_directory(
        cli: Callable[..., Result], project: Callable[..., Path]) -> None:
    root = git_init(project({"MLproject": SPEC}))
    plan = _plan(cli, root, "prep")
    request, run_dir = _request(plan, "prep", "R1", shared=True)
    done = _worker(request, cwd=Path("/"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"made 3\n"  # the step's output, as the engine keeps it
    assert (root / "out" / "data.txt").read_text() == "n=3"
    assert (root / "model.txt").read_text() == str(run_dir)  # the run's own directory
    report = worker.collect(_submission(run_dir, request))
    assert report is not None and report.status == Status.SUCCEEDED and report.exit_code == 0
    assert report.fingerprint == plan.steps[0].fingerprint
    merged = worker.merged(Outcome(Status.SUCCEEDED, 0, engine={"job": "7"}), report)
    assert merged.status == Status.SUCCEEDED and merged.engine["job"] == "7"
    assert merged.fingerprint == report.fingerprint


def test_shared_a_failure_keeps_its_code_and_a_timeout_is_enforced_to_the_second(
        cli: Callable[..., Result], project: Callable[..., Path]) -> None:
    root = git_init(project({"MLproject": SPEC}))
    request, run_dir = _request(_plan(cli, root, "fail"), "fail", "R2", shared=True)
    done = _worker(request, cwd=root)
    assert done.returncode == 3 and b"failing" in done.stdout
    report = worker.collect(_submission(run_dir, request))
    assert report is not None and (report.status, report.exit_code) == (Status.FAILED, 3)
    # the engine saw the worker fail: the worker's own word on how the step ended is taken
    assert worker.merged(Outcome(Status.FAILED, 3), report).exit_code == 3
    request, run_dir = _request(_plan(cli, root, "slow"), "slow", "R3", shared=True)
    started = time.monotonic()
    done = _worker(request, cwd=root)
    assert done.returncode == 124 and time.monotonic() - started < 15
    report = worker.collect(_submission(run_dir, request))
    assert report is not None and report.status == Status.TIMEOUT
    assert report.enforced["timeout"].startswith("1s")


def test_sigterm_from_the_engine_stops_the_step_and_the_worker_still_reports(
        cli: Callable[..., Result], project: Callable[..., Path]) -> None:
    root = git_init(project({"MLproject": SPEC}))
    request, run_dir = _request(_plan(cli, root, "wait"), "wait", "R4", shared=True)
    child = subprocess.Popen(worker.argv(sys.executable), cwd=root, stdout=subprocess.PIPE,
                             env={**os.environ, worker.REQUEST_VAR: request})
    assert child.stdout is not None
    assert child.stdout.readline() == b"started\n"
    child.send_signal(signal.SIGTERM)  # what scancel and a deleted pod do
    assert child.wait(timeout=30) == 130
    report = worker.collect(_submission(run_dir, request))
    assert report is not None and report.status == Status.INTERRUPTED
    # the engine says it cancelled the step: its word stands, the worker's facts are added
    merged = worker.merged(Outcome(Status.CANCELLED, 130, reason="scancel"), report)
    assert (merged.status, merged.reason) == (Status.CANCELLED, "scancel")


def test_a_chained_step_is_fingerprinted_on_the_worker_from_what_its_upstream_left(
        cli: Callable[..., Result], project: Callable[..., Path]) -> None:
    root = git_init(project({"MLproject": SPEC}))
    before = _plan(cli, root, "train")  # made before prep ran: train's input unknown
    run_dir = root / ".mlproject" / "runs" / "R5"
    run_dir.mkdir(parents=True)
    from mlproject.runner.backends.base import Handle

    train = before.steps[1]
    ctx = RunContext("R5", run_dir, str(root), {}, plan=before,
                     after=(Handle("slurm", "R0", "41"),))
    request = worker.request_for(train, ctx, shared=True)
    assert WorkerRequest.decode(request).chained
    assert cli("run", str(root), "-e", "prep").code == 0  # upstream, as the engine ran it
    (root / "trained.txt").write_text("x")
    done = _worker(request, cwd=root)
    assert done.returncode == 0, done.stderr
    report = worker.collect(_submission(run_dir, request))
    now = _plan(cli, root, "train").steps[1].fingerprint
    assert report is not None and report.fingerprint == now != train.fingerprint


def test_not_shared_the_code_travels_as_an_archive_and_the_outputs_come_back_in_the_log(
        cli: Callable[..., Result], project: Callable[..., Path], tmp_path: Path) -> None:
    root = git_init(project({"MLproject": SPEC}))
    (root / "out").mkdir()
    (root / "out" / "stale.txt").write_text("from an earlier run")  # replaced whole
    plan = _plan(cli, root, "prep")
    request, run_dir = _request(plan, "prep", "R6", shared=False)
    code = tmp_path / "code.tar.gz"
    code.write_bytes(codeship.archive(str(root), allow_dirty=False))
    remote = tmp_path / "node" / "checkout"
    done = _worker(request, "--code", str(code), "--root", str(remote), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert worker.shown(done.stdout) == b"made 3\n"  # the bundle is not the step's output
    assert not (root / "model.txt").exists()  # it ran there, not here
    report = worker.collect(_submission(run_dir, request), done.stdout)
    assert report is not None and report.status == Status.SUCCEEDED
    assert (root / "out" / "data.txt").read_text() == "n=3"
    assert not (root / "out" / "stale.txt").exists()
    assert (root / "model.txt").read_text().startswith("/tmp")  # the worker's scratch run dir
    assert (run_dir / worker.RESULT_FILE).exists()
    assert not (remote / ".mlproject").exists()


def test_the_log_never_shows_the_start_of_a_bundle_and_a_cut_bundle_is_no_report(
        tmp_path: Path) -> None:
    raw = b"epoch 1\n" + bundle.BEGIN[:6]
    assert worker.shown(raw) == b"epoch 1\n"
    assert worker.shown(b"a\n\n") == b"a\n\n"  # a blank line is output, not a marker
    cut = b"epoch 1\n" + bundle.BEGIN + b"R7@@\nAAAA"
    assert bundle.split(cut, "R7") == (b"epoch 1\n", None)


def _bundle(run_id: str, members: dict[str, bytes | None], *, result: bool = True,
            link: tuple[str, str] | None = None) -> bytes:
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w:gz") as tar:
        if result:
            data = json.dumps(WorkerResult(run_id, Status.SUCCEEDED, 0).to_json()).encode()
            info = tarfile.TarInfo("result.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
        if link:
            info = tarfile.TarInfo(link[0])
            info.type, info.linkname = tarfile.SYMTYPE, link[1]
            tar.addfile(info)
    payload = packed.getvalue()
    return (b"log\n" + bundle.BEGIN + run_id.encode() + b"@@\n" + base64.encodebytes(payload)
            + bundle.END[:-1] + bundle.END[-1:] + hashlib.sha256(payload).hexdigest().encode()
            + b"@@\n")


@pytest.mark.parametrize("members,link", [
    ({"outputs/../evil.txt": b"x"}, None),
    ({"outputs/notdeclared.txt": b"x"}, None),
    ({"/etc/evil": b"x"}, None),
    ({"outputs/out/data.txt": b"ok"}, ("outputs/out/link", "/etc/passwd")),
    ({"outputs/model.txt": b"ok", "other/thing": b"x"}, None),
])
def test_a_bundle_that_reaches_out_of_the_declared_outputs_changes_nothing(
        cli: Callable[..., Result], project: Callable[..., Path],
        members: dict[str, bytes | None], link: tuple[str, str] | None) -> None:
    root = git_init(project({"MLproject": SPEC}))
    (root / "model.txt").write_text("mine")
    request, run_dir = _request(_plan(cli, root, "prep"), "prep", "R8", shared=False)
    raw = _bundle("R8", members, link=link)
    assert worker.collect(_submission(run_dir, request), raw) is None
    assert (root / "model.txt").read_text() == "mine"
    assert not (root / "evil.txt").exists() and not (root / "notdeclared.txt").exists()
    assert not (root / "out").exists() and not (run_dir / worker.RESULT_FILE).exists()
    assert [p.name for p in run_dir.iterdir()] == []  # no staging left behind


def test_a_bundle_of_another_run_or_without_its_result_or_damaged_is_no_report(
        cli: Callable[..., Result], project: Callable[..., Path]) -> None:
    root = git_init(project({"MLproject": SPEC}))
    request, run_dir = _request(_plan(cli, root, "prep"), "prep", "R9", shared=False)
    sub = _submission(run_dir, request)
    assert worker.collect(sub, _bundle("OTHER", {"outputs/model.txt": b"x"})) is None
    assert worker.collect(sub, _bundle("R9", {"outputs/model.txt": b"x"}, result=False)) is None
    good = _bundle("R9", {"outputs/model.txt": b"x"})
    damaged = good.replace(good[200:204], b"AAAA")
    assert worker.collect(sub, damaged) is None
    assert not (root / "model.txt").exists()
    assert worker.collect(sub, good) is not None and (root / "model.txt").read_text() == "x"
    # an engine that says the step succeeded when the worker reported nothing is not believed
    merged = worker.merged(Outcome(Status.SUCCEEDED, 0), None)
    assert (merged.status, merged.reason) == (Status.FAILED, NO_REPORT)


@pytest.mark.parametrize("value", ["", "not base64 at all!", base64.b64encode(b"garbage").decode(),
                                   "eJzLSM3JyQcABiwCFQ=="])
def test_a_request_that_is_not_one_is_refused_in_one_line(
        value: str, tmp_path: Path) -> None:
    done = _worker(value, cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlproject: worker: "), lines
    assert b"Traceback" not in done.stderr


def test_the_archive_is_the_recorded_commit_unless_dirty_is_allowed(
        project: Callable[..., Path], tmp_path: Path) -> None:
    root = git_init(project({"MLproject": SPEC, "train.py": "v1\n", ".gitignore": "data/\n",
                             "sub/keep.py": "k\n"}))
    (root / "train.py").write_text("v2 uncommitted\n")
    (root / "new.py").write_text("untracked\n")
    (root / "data").mkdir()
    (root / "data" / "big.bin").write_text("ignored: DVC's, pulled by the worker")
    (root / ".mlproject").mkdir()
    (root / "out").mkdir()
    (root / "out" / "data.txt").write_text("upstream output")

    def names(data: bytes) -> dict[str, bytes]:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]

    committed = names(codeship.archive(str(root), allow_dirty=False))
    assert committed == {"MLproject": (root / "MLproject").read_bytes(), "train.py": b"v1\n",
                         ".gitignore": b"data/\n", "sub/keep.py": b"k\n"}
    assert codeship.dirty(str(root), ["out"]) == ["new.py", "train.py"]
    working = names(codeship.archive(str(root), allow_dirty=True, include=["out"]))
    assert working["train.py"] == b"v2 uncommitted\n" and working["new.py"] == b"untracked\n"
    assert working["out/data.txt"] == b"upstream output"
    assert not any(n.startswith(("data/", ".mlproject", ".git/")) for n in working)
    # a project in a subdirectory of its repository ships that directory alone
    git(root, "add", "-A")
    git(root, "commit", "-qm", "all")
    assert set(names(codeship.archive(str(root / "sub"), allow_dirty=False))) == {"keep.py"}


@pytest.mark.parametrize("name,link", [("../escape.txt", None), ("/abs.txt", None),
                                       ("inside", "/etc"), ("a/b", "../../..")])
def test_the_worker_refuses_a_code_archive_that_lands_outside_its_root(
        tmp_path: Path, name: str, link: str | None) -> None:
    packed = tmp_path / "code.tar.gz"
    with tarfile.open(packed, "w:gz") as tar:
        info = tarfile.TarInfo(name)
        if link is None:
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
        else:
            info.type, info.linkname = tarfile.SYMTYPE, link
            tar.addfile(info)
    root = tmp_path / "root"
    with pytest.raises(codeship.CodeShipError, match="outside the project"):
        codeship.unpack(str(packed), str(root))
    assert not (tmp_path / "escape.txt").exists()


def test_a_step_ships_with_the_outputs_of_every_step_it_needs(
        cli: Callable[..., Result], project: Callable[..., Path]) -> None:
    text = SPEC + """
      evaluate:
        needs: [train]
        command: "true"
    """
    root = git_init(project({"MLproject": text}))
    plan = _plan(cli, root, "evaluate")
    evaluate = next(s for s in plan.steps if s.entry_point == "evaluate")
    assert codeship.upstream_outputs(plan, evaluate) == ["model.txt", "out", "trained.txt"]
    (root / "trained.txt").write_text("t")
    ctx = RunContext("R10", root / "r", str(root), {}, plan=plan)
    with tarfile.open(fileobj=io.BytesIO(codeship.archive_for(evaluate, ctx))) as tar:
        assert "trained.txt" in tar.getnames() and "MLproject" in tar.getnames()


def test_not_shared_what_the_code_logged_travels_back_in_the_result(
        cli: Callable[..., Result], project: Callable[..., Path], tmp_path: Path) -> None:
    """On an engine whose run directory is not this one (Kubernetes, Ray), what the step logged
    with `mlproject.log` comes back in the worker's result, and reaches the record."""
    from dataclasses import replace

    from mlproject.runner import recording, tracking
    from mlproject.runner.backends.base import Outcome

    spec = SPEC.replace("      fail:", "      logs:\n        command: python logs.py\n      fail:")
    logs = ("from mlproject import log\n"
            "for e in range(50000):\n    log.metric('loss', 1 / (e + 1), step=e)\n"
            "log.param('opt', 'sgd')\n")
    root = git_init(project({"MLproject": spec, "logs.py": logs}))
    plan = _plan(cli, root, "logs")
    request, run_dir = _request(plan, "logs", "R20", shared=False)
    code = tmp_path / "code.tar.gz"
    code.write_bytes(codeship.archive(str(root), allow_dirty=False))
    done = _worker(request, "--code", str(code), "--root", str(tmp_path / "node"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = worker.collect(_submission(run_dir, request), done.stdout)
    assert report is not None and report.tracked is not None
    assert not (run_dir / "tracking").exists()  # the files stayed on the engine's machine
    found = tracking.from_json(report.tracked)
    assert found.params == {"opt": "sgd"} and found.last == {"loss": 1 / 50000}
    assert len(found.series["loss"]) <= tracking.read.__globals__["MAX_POINTS"]
    assert found.series["loss"][0][:2] == [0, 1.0]
    # the submitting side writes it into the record, as for a local run
    from mlproject.runner.state import records

    step = next(s for s in plan.steps if s.entry_point == "logs")
    record = recording.initial(plan, step, "R20", "i", "engine", records.now())
    outcome = worker.merged(Outcome(Status.SUCCEEDED, 0), report)
    recording.finish(plan, step, record, run_dir, 0.0, outcome)
    written = json.loads((run_dir / "run.json").read_text())
    assert written["metrics"]["loss"] == 1 / 50000 and written["logged_params"] == {"opt": "sgd"}
    assert written["series"]["loss"][-1][:2] == [49999, 1 / 50000]
    # a result from elsewhere is checked like the files are
    bad = tracking.from_json({"series": {"m": [[0, "x", 1.0], [1, 2.0, 3.0]], "": []},
                              "params": {"a": 1}})
    assert bad.series == {"m": [[1, 2.0, 3.0]]} and bad.params == {}
    assert bad.problem is not None and "left out" in bad.problem
    assert replace(report, tracked=None).tracked is None
