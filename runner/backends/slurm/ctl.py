"""Slurm's commands, each bounded in time, and their output read: `sbatch --parsable`,
`scontrol show job|node|partition -o` (one line of Key=Value fields per object), `sacct -P`
(only where accounting exists: without it Slurm keeps a finished job for MinJobAge seconds, and
scontrol reads it), `scancel`, `scontrol ping`.

Every call has a timeout: a Slurm client retries a controller that does not answer for ~10 s,
and one whose SLURM_CONF names no file for 60 s.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

from mlproject.runner.util import proc

_FIELD = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_:/.]*)=")  # where a Key= begins
SACCT_FIELDS = ("JobID", "JobName", "State", "ExitCode", "Reason", "NodeList", "Elapsed",
                "Timelimit", "AllocTRES", "Start", "End")


class SlurmError(Exception):
    """A Slurm command that could not answer: the command, and what it said (its own words)."""


def fields(line: str) -> dict[str, str]:
    """`Key=Value Key=Value ...` as a dict. A value may hold spaces (OS=, Comment=, Command=):
    it runs to the next ` Key=`."""
    found: dict[str, str] = {}
    marks = list(_FIELD.finditer(line))
    for this, following in zip(marks, [*marks[1:], None], strict=True):
        end = following.start() if following else len(line)
        found[this.group(1)] = line[this.end():end].strip()
    return found


def exit_code(text: str | None) -> tuple[int | None, int | None]:
    """`ExitCode=N:S` as (N, S): the batch script's exit code, and the signal that ended it."""
    if not text:
        return None, None
    code, _, sig = text.partition(":")
    try:
        return int(code), int(sig) if sig else 0
    except ValueError:
        return None, None


def duration(text: str) -> float | None:
    """A Slurm time (`[D-]HH:MM:SS`, `MM:SS`, minutes) in seconds; None for UNLIMITED/NONE."""
    text = text.strip()
    if not text or text.upper() in ("UNLIMITED", "INFINITE", "NONE", "N/A", "PARTITION_LIMIT"):
        return None
    days = 0
    if "-" in text:
        head, _, text = text.partition("-")
        days = int(head)
    parts = [int(p) for p in text.split(":")]
    if len(parts) == 1:  # minutes
        return days * 86400 + parts[0] * 60.0
    if len(parts) == 2:
        return days * 86400 + parts[0] * 60.0 + parts[1]
    hours, mins, secs = parts[-3:]
    return days * 86400 + hours * 3600.0 + mins * 60 + secs


def gpus(gres: str) -> int:
    """How many GPUs a node's `Gres=` offers: `gpu:2`, `gpu:a100:4(S:0-1),gpu:v100:2`."""
    total = 0
    for item in re.split(r",(?![^()]*\))", gres or ""):
        parts = item.split("(")[0].split(":")
        if parts[0] != "gpu":
            continue
        try:
            total += int(parts[-1]) if len(parts) > 1 else 1
        except ValueError:
            total += 1  # gpu:a100 without a count: one
    return total


class Ctl:
    """The Slurm commands, in `bindir` (else on PATH), with SLURM_CONF from `conf` where the
    environment has none (a handle read by another process remembers the cluster)."""

    def __init__(self, bindir: str | None = None, timeout: float = 5.0,
                 submit_timeout: float = 60.0) -> None:
        self.bindir = bindir
        self.timeout = timeout
        self.submit_timeout = submit_timeout

    def tool(self, name: str) -> str:
        return os.path.join(self.bindir, name) if self.bindir else name

    def environ(self, conf: str | None = None,
                extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {**os.environ, **(extra or {})}
        if conf and not env.get("SLURM_CONF"):
            env["SLURM_CONF"] = conf
        return env

    def call(self, name: str, *args: str, conf: str | None = None, timeout: float | None = None,
             env: Mapping[str, str] | None = None, cwd: str | None = None) -> proc.Result:
        """Run one Slurm command; SlurmError when it cannot be run or does not answer in time
        (a non-zero exit is the caller's to read)."""
        argv = [self.tool(name), *args]
        limit = timeout or self.timeout
        try:
            return proc.run(argv, env=self.environ(conf, env), cwd=cwd, check=False,
                            timeout=limit)
        except proc.ProcError as exc:
            if exc.code is None and "timed out" in exc.output:
                raise SlurmError(f"`{name} {' '.join(args[:3])}` did not answer within "
                                 f"{limit:g}s (the Slurm controller is down or unreachable?)"
                                 ) from None
            raise SlurmError(f"`{name}` could not be run: {exc.output.strip()}") from None

    # -- questions

    def ping(self, conf: str | None = None) -> str | None:
        """None when the controller answers; else what Slurm says (it answers at once, even
        for a controller that is down)."""
        done = self.call("scontrol", "ping", conf=conf)
        out = _text(done.stdout)
        if done.code == 0 and " is UP" in out:
            return None
        said = (out or _text(done.stderr)).splitlines()
        return " ".join(line for line in said if line.strip() and not line.startswith("*")) \
            or f"scontrol ping exited with {done.code}"

    def show(self, kind: str, name: str | None = None,
             conf: str | None = None) -> list[dict[str, str]]:
        """`scontrol show KIND [NAME] -o`: one dict per object."""
        done = self.call("scontrol", "show", kind, "-o", *([name] if name else []), conf=conf)
        if done.code != 0:
            raise SlurmError(_said(done, f"scontrol show {kind}"))
        return [fields(line) for line in _text(done.stdout).splitlines() if line.strip()]

    def job(self, job_id: str, conf: str | None = None) -> dict[str, str] | None:
        """The job as scontrol knows it; None when Slurm no longer (or never) knew it."""
        done = self.call("scontrol", "show", "job", "-o", job_id, conf=conf)
        if done.code != 0:
            said = _said(done, "scontrol show job")
            if "Invalid job id" in said or "not found" in said:  # an array task: "Job 5_2 not found"
                return None
            raise SlurmError(said)
        for line in _text(done.stdout).splitlines():
            found = fields(line)
            if found.get("JobId") == job_id or _task_of(found, job_id):
                return found  # an array or a het job prints more lines
        return None

    def accounted(self, job_id: str, conf: str | None = None) -> dict[str, str] | None:
        """The job as accounting knows it (`sacct -P`, parsable text: sacct --json of 22.05
        misreports exit codes); None where there is no accounting or it has no such job."""
        done = self.call("sacct", "-P", "-n", "-X", "-j", job_id, "-o", ",".join(SACCT_FIELDS),
                         conf=conf)
        if done.code != 0:
            return None  # "Slurm accounting storage is disabled"
        for line in _text(done.stdout).splitlines():
            values = line.split("|")
            if len(values) == len(SACCT_FIELDS) and values[0] == job_id:
                return dict(zip(SACCT_FIELDS, values, strict=True))
        return None

    def named(self, name: str, conf: str | None = None) -> list[str]:
        """Ids of the jobs Slurm knows (any state) by this name, newest last."""
        done = self.call("squeue", "-h", "-t", "all", "-n", name, "-o", "%i", conf=conf)
        if done.code != 0:
            raise SlurmError(_said(done, "squeue"))
        return sorted(_text(done.stdout).split(), key=lambda i: int(i) if i.isdigit() else 0)

    # -- actions

    def submit(self, argv: Sequence[str], env: Mapping[str, str], cwd: str) -> str:
        """`sbatch --parsable ...`: the job id; SlurmError with sbatch's words when refused."""
        done = self._sbatch(argv, env, cwd)
        out = _text(done.stdout).strip()
        if done.code != 0 or not out:
            raise SlurmError(_said(done, "sbatch"))
        return out.splitlines()[-1].split(";")[0].strip()

    def _sbatch(self, argv: Sequence[str], env: Mapping[str, str], cwd: str) -> proc.Result:
        try:
            return proc.run(list(argv), env=self.environ(None, env), cwd=cwd, check=False,
                            timeout=self.submit_timeout)
        except proc.ProcError as exc:
            if exc.code is None and "timed out" in exc.output:
                raise SlurmError(f"sbatch did not answer within {self.submit_timeout:g}s") from None
            raise SlurmError(f"sbatch could not be run: {exc.output.strip()}") from None

    def cancel(self, job_id: str, name: str, *, force: bool = False,
               conf: str | None = None) -> str | None:
        """Cancel the job if it is still named `name` (scancel filters by it: a job id that is
        no longer this run's is left alone). force: SIGKILL to every process of the job at
        once. None when done; else what scancel said."""
        args = ["--signal=KILL", "--full"] if force else []
        done = self.call("scancel", *args, f"--name={name}", job_id, conf=conf)
        if done.code != 0:
            return _said(done, "scancel")
        return None


def _task_of(found: dict[str, str], job_id: str) -> bool:
    """Whether `found` (a line of scontrol) is array task `job_id` (`ARRAYID_TASK`): the task's
    own line once it started, else the array's line of pending tasks, whose ArrayTaskId is a
    set such as `4-8%2` or `1,3,5-7`."""
    array, sep, task = job_id.partition("_")
    if not sep or not task.isdigit() or found.get("ArrayJobId") != array:
        return False
    wanted = int(task)
    for part in found.get("ArrayTaskId", "").split("%")[0].strip("[]").split(","):
        low, dash, high = part.partition("-")
        if low.isdigit() and (int(low) == wanted if not dash else
                              high.isdigit() and int(low) <= wanted <= int(high)):
            return True
    return False


def _text(data: bytes) -> str:
    return data.decode(errors="replace")


def _said(done: proc.Result, what: str) -> str:
    """What a Slurm command said when it failed, in its own words."""
    text = (_text(done.stderr) or _text(done.stdout)).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return " ".join(lines[-4:]) or f"{what} exited with {done.code}"
