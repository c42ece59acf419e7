"""The slurm backend: a step is a Slurm batch job.

`prepare` writes nothing: it plans the sbatch script (script.py, pure) that `plan --backend
slurm` shows; `submit` writes that script into the run directory and runs `sbatch --parsable`
on it; the job's output goes straight into the run's log.txt (the filesystem is shared).
`status` asks `scontrol show job -o` (~10 ms), falling back to `sacct -P` once scontrol has
forgotten the job, where there is accounting. `wait` is the generic poll (Ctrl-C, `mlproject
cancel`, a timeout the waiting mlproject keeps), then what Slurm says of the job (its id, state,
exit code, node, what it allocated) goes into the record.

A pipeline is submitted at once: a step whose context names upstream handles (`ctx.after`)
gets `--dependency=afterok:ID:...` with `--kill-on-invalid-dep=yes`, so Slurm starts it only
after they succeed, and cancels it when one does not.
"""
from __future__ import annotations

import datetime as dt
import math
import os
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from mlproject.runner.backends.base import (
    Capabilities,
    Handle,
    Outcome,
    Patience,
    RunContext,
    StepState,
    Stopper,
    Submission,
    SubmitError,
)
from mlproject.runner.backends.settings import Setting, with_defaults
from mlproject.runner.backends.slurm import script, states
from mlproject.runner.backends.slurm.ctl import Ctl, SlurmError, duration, gpus
from mlproject.runner.backends.slurm.settings import SETTINGS
from mlproject.runner.plan import Step
from mlproject.runner.state.status import Status
from mlproject.runner.util import console
from mlproject.runner.util.exitcodes import USAGE as EXIT_USAGE
from mlproject.runner.util.files import read_from
from mlproject.spec.units import format_bytes

EXIT_NOT_STARTED = 127
UNANSWERED = 60.0  # seconds Slurm may stop answering about a submitted job before it is lost
LOG_TAIL = 8192  # bytes of the job's output searched for Slurm's "exceeded memory limit"
SUBMIT_TIMEOUT = 60.0  # sbatch waits on a busy controller longer than a query should
FIX_CONTROLLER = ("start slurmctld, or point SLURM_CONF at the cluster's slurm.conf (or the "
                  "slurm backend's `bin` setting at its commands)")


@dataclass
class _Asked:
    """What this process last heard of one job."""
    job: dict[str, str] | None = None
    patience: Patience = field(default_factory=lambda: Patience(UNANSWERED))
    cancelled: bool = False  # by this process: a pending array task then leaves no trace


class SlurmBackend:
    name = "slurm"
    capabilities = Capabilities(shares_filesystem=True, builds_environments=True,
                                runs_containers=False, detaches=True, chains_steps=True,
                                writes_log=True, poll_interval=0.25)
    SETTINGS: ClassVar[dict[str, Setting]] = SETTINGS

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        self.settings: dict[str, Any] = with_defaults(SETTINGS, settings)
        self.ctl = Ctl(self.settings["bin"], float(self.settings["timeout"]), SUBMIT_TIMEOUT)
        self._problems: dict[str, str] = {}  # run id -> why its submission cannot be made
        # run id -> its directives and command, for a job array of several points
        self._jobs: dict[str, tuple[tuple[str, ...], list[str]]] = {}
        self._asked: dict[str, _Asked] = {}
        self._down: str | bool | None = False  # False: not asked; None: the controller answers
        self._cluster: tuple[list[dict[str, str]], list[dict[str, str]]] | None = None

    # -- before anything runs

    def preflight(self, step: Step, root: str | None = None) -> list[str]:
        """Why the step cannot start here: Slurm's commands missing, the controller not
        answering, a request no node of the partition can ever meet."""
        missing = [t for t in ("sbatch", "scontrol", "scancel")
                   if shutil.which(self.ctl.tool(t)) is None]
        if missing:
            where = f"in {self.settings['bin']}" if self.settings["bin"] else "on PATH"
            return [f"Slurm's {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not "
                    f"found {where}: run mlproject on a Slurm login node, install Slurm's client "
                    "commands (Debian: apt-get install slurm-client), or set the slurm backend's "
                    "`bin` setting to their directory"]
        down = self._unreachable()
        if down:
            return [down]
        try:
            return self._beyond_cluster(step)
        except SlurmError as exc:
            return [f"cannot read the Slurm cluster's nodes and partitions: {exc}: "
                    f"{FIX_CONTROLLER}"]

    def _unreachable(self) -> str | None:
        if self._down is False:
            conf = os.environ.get("SLURM_CONF")
            if conf and not os.path.isfile(conf):
                self._down = (f"SLURM_CONF={conf} names no file (Slurm's commands would retry "
                              f"for a minute): set SLURM_CONF to the cluster's slurm.conf, or "
                              "unset it")
            else:
                try:
                    said = self.ctl.ping()
                except SlurmError as exc:
                    said = str(exc)
                self._down = None if said is None else (
                    f"the Slurm controller does not answer: {said} (scontrol ping"
                    f"{f', SLURM_CONF={conf}' if conf else ''}): {FIX_CONTROLLER}")
        return self._down if isinstance(self._down, str) else None

    def _beyond_cluster(self, step: Step) -> list[str]:
        """A request no node of the partition(s) can meet, with Slurm's figures and words."""
        res = step.resources
        if res.cpu is None and res.memory is None and not res.gpu and res.timeout is None:
            return []
        if self._cluster is None:
            self._cluster = (self.ctl.show("partition"), self.ctl.show("node"))
        partitions, nodes = self._cluster
        names = [p for p in str(self.settings["partition"] or "").split(",") if p]
        known = {p.get("PartitionName", ""): p for p in partitions}
        if not names:
            names = [n for n, p in known.items() if p.get("Default") == "YES"][:1]
            if not names:
                return []  # no default partition: sbatch says so itself
        unknown = [n for n in names if n not in known]
        if unknown:
            return [f"the Slurm cluster has no partition {', '.join(map(repr, unknown))} (its "
                    f"partitions: {', '.join(sorted(known)) or 'none'}): set the slurm "
                    "backend's `partition` setting to one of them"]
        lacking: list[str] = []
        for name in names:
            short = _short_of(step, known[name], [n for n in nodes if name in
                                                  n.get("Partitions", "").split(",")],
                              float(self.settings["time_margin"]))
            if not short:
                return []  # this partition can run it
            lacking.append(f"partition {name!r}: {'; '.join(short)}")
        said = self._slurm_verdict(step)
        if said is None:
            return []  # Slurm would take it: mlproject's reading of the nodes was wrong
        return [f"entry point {step.entry_point!r} asks for more than the Slurm cluster has "
                f"({' | '.join(lacking)}); Slurm says: {said}. Ask for less (resources in the "
                "MLproject file), or choose a partition whose nodes have it (the slurm "
                "backend's `partition` setting)"]

    def _slurm_verdict(self, step: Step) -> str | None:
        """`sbatch --test-only` of the step's directives: None when Slurm would take the job,
        else what it says."""
        opts, _, _ = script.directives(step, run_id="preflight", run_dir="/tmp", cwd="/",
                                       env_names=(), settings=self.settings)
        argv = script.test_argv(opts, self.ctl.tool("sbatch"))
        try:
            done = self.ctl.call("sbatch", *argv[1:])
        except SlurmError as exc:
            return str(exc)
        if done.code == 0:
            return None
        text = (done.stderr or done.stdout).decode(errors="replace").strip()
        return " ".join(line.strip() for line in text.splitlines() if line.strip()) or \
            f"sbatch --test-only exited with {done.code}"

    def prepare(self, step: Step, ctx: RunContext) -> Submission:
        after = [h.id for h in getattr(ctx, "after", ()) or ()]
        command, env, inner = self._command(step, ctx)
        try:
            job = script.job(step, run_id=ctx.run_id, run_dir=str(ctx.run_dir), cwd=ctx.cwd,
                             env_names=list(env), command=command, settings=self.settings,
                             after=after, inner_timeout=inner)
            if not ctx.planned:
                self._jobs[ctx.run_id] = (job.directives, command)
        except ValueError as exc:
            self._problems[ctx.run_id] = str(exc)
            job = script.Job((), f"# not submitted: {exc}\n", (self.ctl.tool("sbatch"),
                             "--parsable", f"{ctx.run_dir}/{script.SCRIPT}"), {},
                             (f"cannot start: {exc}",))
        return Submission(self.name, step.entry_point, ctx.run_id, job.argv, ctx.cwd, env,
                          step.resources, job.enforcement, str(ctx.run_dir / "log.txt"),
                          inherits_env=bool(self.settings["export_env"]),
                          timeout=None if inner else step.resources.timeout, script=job.script,
                          notes=job.notes)

    def _command(self, step: Step, ctx: RunContext
                 ) -> tuple[list[str], dict[str, str], bool]:
        """What the job runs, the variables it is given, and whether it keeps the step's
        timeout itself (to the second)."""
        from mlproject.runner import worker

        python = str(self.settings["python"] or sys.executable)
        # the worker sets the step's own variables (the run's, the environment's) from the
        # request; the job also has what sbatch's environment exports (--export)
        env = {worker.REQUEST_VAR: worker.request_for(step, ctx, shared=True),
               "PYTHONUNBUFFERED": "1"}
        return worker.argv(python), env, True

    # -- running

    def submit(self, submission: Submission) -> Handle:
        problem = self._problems.pop(submission.run_id, None)
        if problem:
            raise SubmitError(problem, EXIT_USAGE)
        if submission.script is None:
            raise SubmitError("the slurm backend submits what it prepared itself", EXIT_USAGE)
        path = Path(submission.argv[-1])
        run_dir = os.path.dirname(submission.log)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(submission.script)
        except OSError as exc:
            raise SubmitError(f"the batch script cannot be written to {path}: "
                              f"{exc.strerror or exc}", EXIT_NOT_STARTED) from None
        name = script.job_name(submission.run_id)
        conf = os.environ.get("SLURM_CONF")
        try:
            job_id = self.ctl.submit(submission.argv, submission.env, submission.cwd)
        except SlurmError as exc:
            found = self._found_after_timeout(name, str(exc))
            if found is None:
                raise SubmitError(f"Slurm refused the job: {exc}", EXIT_USAGE) from None
            job_id = found
        self._asked[job_id] = _Asked()
        return Handle(self.name, submission.run_id, job_id, {
            "name": name, "log": submission.log, "run_dir": run_dir, "script": str(path),
            **({"slurm_conf": conf} if conf else {})})

    def submit_array(self, submissions: Sequence[Submission], concurrency: int) -> list[Handle]:
        """A sweep's points (submissions of one step) as one job array, `concurrency` tasks at
        most running at once (`--array=0-N%J`); a handle per point (`JOBID_i`)."""
        from mlproject.runner import worker

        for sub in submissions:
            problem = self._problems.pop(sub.run_id, None)
            if problem:
                raise SubmitError(problem, EXIT_USAGE)
        opts, command = self._jobs[submissions[0].run_id]
        run_dirs = [os.path.dirname(s.log) for s in submissions]
        try:
            _, text = script.array_job(opts, command, run_dirs, concurrency,
                                                worker.REQUEST_VAR)
        except ValueError as exc:
            raise SubmitError(str(exc), EXIT_USAGE) from None
        path = Path(run_dirs[0]) / script.ARRAY_SCRIPT
        try:
            for sub, run_dir in zip(submissions, run_dirs, strict=True):
                fd = os.open(Path(run_dir) / script.REQUEST_FILE,
                             os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(sub.env[worker.REQUEST_VAR])
            path.write_text(text)
        except OSError as exc:
            raise SubmitError(f"the job array cannot be written to {path.parent}: "
                              f"{exc.strerror or exc}", EXIT_NOT_STARTED) from None
        name = script.array_name(os.path.basename(run_dirs[0]))
        env = {k: v for k, v in submissions[0].env.items() if k != worker.REQUEST_VAR}
        argv = (script.tool(self.settings, "sbatch"), "--parsable", str(path))
        try:
            job_id = self.ctl.submit(argv, env, submissions[0].cwd)
        except SlurmError as exc:
            raise SubmitError(f"Slurm refused the job array: {exc}", EXIT_USAGE) from None
        job_id = job_id.split(";")[0]
        conf = os.environ.get("SLURM_CONF")
        handles = []
        for i, (sub, run_dir) in enumerate(zip(submissions, run_dirs, strict=True)):
            task = f"{job_id}_{i}"
            self._asked[task] = _Asked()
            self._jobs.pop(sub.run_id, None)
            handles.append(Handle(self.name, sub.run_id, task, {
                "name": name, "log": sub.log, "run_dir": run_dir, "script": str(path),
                "array": job_id, "task": i, **({"slurm_conf": conf} if conf else {})}))
        return handles

    def _found_after_timeout(self, name: str, said: str) -> str | None:
        """A job that sbatch submitted but did not say so in time (a busy controller)."""
        if "did not answer" not in said:
            return None
        try:
            ids = self.ctl.named(name)
        except SlurmError:
            return None
        return ids[-1] if ids else None

    def status(self, handle: Handle) -> StepState:
        asked = self._asked.setdefault(handle.id, _Asked())
        conf = _conf(handle)
        try:
            job = self.ctl.job(handle.id, conf) or self.ctl.accounted(handle.id, conf)
        except SlurmError as exc:
            return asked.patience.unanswered(str(exc), "Slurm stopped answering",
                                             Status.RUNNING if asked.job else Status.QUEUED)
        asked.patience.answered()
        if job is None and asked.cancelled:
            return StepState(Status.CANCELLED, reason="cancelled through Slurm (scancel) before "
                             "it started")
        if job is None:
            return StepState(Status.CRASHED, reason=(
                f"Slurm no longer knows job {handle.id} (scontrol forgets a finished job "
                "MinJobAge seconds after it ended, and no accounting (sacct) has it)"))
        foreign = _foreign(job, handle)
        if foreign:
            return StepState(Status.CRASHED, reason=foreign)
        asked.job = job
        raw = (job.get("JobState") or job.get("State") or "").split(" ")[0]
        tail = _tail(str(handle.data.get("log") or "")) if raw in ("FAILED", "CANCELLED") else b""
        state = states.state_of(job, tail)
        if state.status == Status.QUEUED and (job.get("Reason") or "None") == "None":
            return StepState(Status.QUEUED)  # just submitted: nothing worth saying yet
        return state

    def logs(self, handle: Handle, since: int = 0, follow: bool = False) -> Iterator[bytes]:
        """The job's output (Slurm writes it into the run's log.txt) after `since` bytes."""
        log = str(handle.data.get("log") or "")
        at = since
        while True:
            data = read_from(log, at)
            if data:
                at += len(data)
                yield data
            if not follow:
                return
            if self.status(handle).status.final:
                rest = read_from(log, at)
                if rest:
                    yield rest
                return
            time.sleep(self.capabilities.poll_interval)

    def cancel(self, handle: Handle, force: bool = False) -> None:
        """scancel (Slurm sends SIGTERM, then SIGKILL after its KillWait); force: SIGKILL to
        every process of the job at once. Only a job still named for this run is touched."""
        name = str(handle.data.get("name") or script.job_name(handle.run_id))
        self._asked.setdefault(handle.id, _Asked()).cancelled = True
        try:
            said = self.ctl.cancel(handle.id, name, force=force, conf=_conf(handle))
        except SlurmError as exc:
            said = str(exc)
        if said and not (force and "already completing or completed" in said):
            console.say(f"warning: cannot cancel Slurm job {handle.id}: {said}")

    def wait(self, submission: Submission, handle: Handle, stopper: Stopper) -> Outcome:
        from mlproject.runner.backends.wait import poll

        outcome = poll(self, submission, handle, stopper)
        asked = self._asked.pop(handle.id, None)
        job = asked.job if asked else None
        if job is None or not states.state_of(job).status.final:
            job = self._final(handle) or job
        facts = _facts(handle, job)
        from mlproject.runner import worker

        facts["enforced"] = dict(submission.enforcement)  # what was asked of Slurm, and how
        outcome = replace(outcome, enforced=dict(submission.enforcement), engine=facts)
        return worker.merged(outcome, worker.collect(submission))

    def _final(self, handle: Handle) -> dict[str, str] | None:
        """The job once Slurm has ended it (after a cancel it may take a moment)."""
        end = time.monotonic() + 5.0
        job = None
        while True:
            try:
                job = self.ctl.job(handle.id, _conf(handle)) or job
            except SlurmError:
                return job
            if job is None or states.state_of(job).status.final or time.monotonic() > end:
                return job
            time.sleep(0.1)

    def worker_log(self, handle: Handle) -> None:
        """The worker's report is in the shared run directory (worker.json), not in the log."""
        return None

    def engine_facts(self, handle: Handle) -> dict[str, Any]:
        """What Slurm says of the job (for a record completed by reconcile)."""
        try:
            job = self.ctl.job(handle.id, _conf(handle)) or self.ctl.accounted(handle.id,
                                                                                 _conf(handle))
        except SlurmError as exc:
            return {"job_id": handle.id, "error": str(exc)}
        return _facts(handle, job)

    def find(self, run_id: str, run_dir: str) -> Handle | None:
        """The job of a run whose record lacks its id (its supervisor died between sbatch and
        writing the record), by its name; None when Slurm has none."""
        name = script.job_name(run_id)
        try:
            ids = self.ctl.named(name)
        except SlurmError:
            return None
        if not ids:
            return None
        conf = os.environ.get("SLURM_CONF")
        return Handle(self.name, run_id, ids[-1], {
            "name": name, "log": os.path.join(run_dir, "log.txt"), "run_dir": run_dir,
            "script": os.path.join(run_dir, script.SCRIPT), **({"slurm_conf": conf} if conf else {})})


def _short_of(step: Step, partition: Mapping[str, str], nodes: Sequence[Mapping[str, str]],
              margin: float) -> list[str]:
    """What no node of this partition has of what the step asks (empty: some node has all)."""
    res = step.resources
    short: list[str] = []
    if res.timeout is not None:
        most = duration(partition.get("MaxTime", ""))
        wanted = script.minutes(res.timeout + margin) * 60
        if most is not None and wanted > most:
            short.append(f"a time limit of {wanted // 60} minutes (resources.timeout "
                         f"{res.timeout:g}s + time_margin {margin:g}s); its MaxTime is "
                         f"{partition.get('MaxTime')}")
    if not nodes:
        return [*short, "it has no nodes"]
    cpus = max(_int(n.get("CPUEfctv") or n.get("CPUTot")) for n in nodes)
    cap = _int(partition.get("MaxCPUsPerNode"), cpus)
    if res.cpu is not None and max(1, math.ceil(res.cpu)) > min(cpus, cap):
        short.append(f"{res.cpu:g} CPUs; its nodes have at most {cpus} (CPUTot)"
                     f"{f', MaxCPUsPerNode={cap}' if cap < cpus else ''}")
    if res.memory is not None:
        memory = max(_int(n.get("RealMemory")) - _int(n.get("MemSpecLimit")) for n in nodes)
        cap = _megabytes(partition.get("MaxMemPerNode"), memory)
        if script.mebibytes(res.memory) > min(memory, cap):
            short.append(f"{format_bytes(res.memory)} of memory; its nodes have at most "
                         f"{memory}M (RealMemory)"
                         f"{f', MaxMemPerNode={cap}M' if cap < memory else ''}")
    if res.gpu:
        most_gpus = max(gpus(n.get("Gres", "")) for n in nodes)
        if res.gpu > most_gpus:
            shown = sorted({n.get("Gres", "(null)") for n in nodes})
            short.append(f"{res.gpu} GPU{'s' if res.gpu > 1 else ''}; its nodes have at most "
                         f"{most_gpus} (Gres={', '.join(shown)})")
    return short


def _int(text: str | None, default: int = 0) -> int:
    try:
        return int(str(text).split("(")[0])
    except ValueError:
        return default


def _megabytes(text: str | None, default: int) -> int:
    """A partition's MaxMemPerNode (MB, or UNLIMITED) as MB."""
    word = (text or "").strip().upper()
    if not word or word == "UNLIMITED":
        return default
    factor = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}.get(word[-1])
    try:
        return int(float(word[:-1]) * factor) if factor else int(word)
    except ValueError:
        return default


def _conf(handle: Handle) -> str | None:
    value = handle.data.get("slurm_conf")
    return value if isinstance(value, str) else None


def _foreign(job: Mapping[str, str], handle: Handle) -> str | None:
    """Why the job a handle names is not that run's (a record copied from elsewhere, a job id
    Slurm has since given another job), or None: such a job is never cancelled."""
    name = job.get("JobName")
    wanted = str(handle.data.get("name") or script.job_name(handle.run_id))
    if name is None or name == wanted:
        return None
    return (f"Slurm job {handle.id} is not run {handle.run_id}'s (it is named {name!r}, not "
            f"{wanted!r}): left alone")


def _tail(path: str) -> bytes:
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            size = log.tell()
            log.seek(max(0, size - LOG_TAIL))
            return log.read()
    except OSError:
        return b""


_FACTS = (("JobId", "job_id"), ("JobName", "name"), ("JobState", "state"),
          ("Reason", "reason"), ("ExitCode", "exit_code"), ("NodeList", "node"),
          ("Partition", "partition"), ("Account", "account"), ("QOS", "qos"),
          ("TimeLimit", "time_limit"), ("RunTime", "run_time"), ("SubmitTime", "submitted_at"),
          ("StartTime", "started_at"), ("EndTime", "ended_at"), ("TRES", "allocated"),
          ("MinMemoryNode", "memory"), ("NumCPUs", "cpus"), ("TresPerNode", "gres"),
          ("Dependency", "dependency"), ("WorkDir", "workdir"),
          ("ArrayJobId", "array_job_id"), ("ArrayTaskId", "array_task_id"))
# sacct's names for the same facts
_SACCT = {"JobID": "job_id", "JobName": "name", "State": "state", "Reason": "reason",
          "ExitCode": "exit_code", "NodeList": "node", "Timelimit": "time_limit",
          "Elapsed": "run_time", "Start": "started_at", "End": "ended_at",
          "AllocTRES": "allocated"}


def _facts(handle: Handle, job: Mapping[str, str] | None) -> dict[str, Any]:
    """What Slurm says of the job that ran, for the record."""
    if job is None:
        return {"job_id": handle.id, "gone": True}
    names = dict(_FACTS) if "JobId" in job else _SACCT
    facts: dict[str, Any] = {"job_id": handle.id}
    for key, value in job.items():
        if key in names and value not in ("", "(null)", "None", "N/A", "Unknown"):
            facts[names[key]] = value
    facts["source"] = "scontrol" if "JobId" in job else "sacct"
    end = job.get("EndTime") or job.get("End")
    if end and states.state_of(job).status.final:  # before that, EndTime is a forecast
        try:  # Slurm's times are the controller's local time, without a zone
            facts["finished_at"] = dt.datetime.fromisoformat(end).astimezone().isoformat()
        except ValueError:
            pass
    if handle.data.get("script"):
        facts["script"] = handle.data["script"]
    return facts
