"""What mlproject adds to a step on Slurm, and how fast a detached pipeline reaches Slurm.

    python benchmarks/bench_slurm.py [--runs 7]

(a) `sbatch --wait --wrap 'echo ok'`: Slurm's bare submission of the command, to its end;
(b) `mlproject run . -e noop --backend slurm` of the same command (the sbatch script, the
    worker on the node, the record); overhead (b - a), target <= 0.5 s;
(c) `mlproject run . -e s10 --backend slurm --detach` of a 10-step chain (each step needs the
    one before): the time from the command's start until Slurm holds all ten jobs (squeue
    polled every 10 ms), target < 1 s; and when the command itself returned.

Medians, the cases (a) and (b) interleaved (bench_run.interleaved). The cluster is the tests'
single-node Slurm (tests/slurmcluster.py: Debian's slurm-wlm, started here by pid on 127.0.0.1,
stopped at the end); run as root.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_run import interleaved, make_project, mlproject_command, verdict

TARGET_OVERHEAD_MS = 500.0
TARGET_CHAIN_MS = 1000.0
COMMAND = "echo ok"
STEPS = 10


def project_text() -> str:
    lines = ["name: bench", "entry_points:", "  noop:", f'    command: "{COMMAND}"']
    for n in range(1, STEPS + 1):
        lines += [f"  s{n}:", '    command: "sleep 60"']
        if n > 1:
            lines.append(f"    needs: [s{n - 1}]")
    return "\n".join(lines) + "\n"


SEEN: set[str] = set()  # the job names of earlier rounds (every run has a new id)


def ours(env: dict[str, str], new: bool = False) -> int:
    """How many jobs of mlproject's Slurm holds (pending or running); `new`: of this round."""
    done = subprocess.run(["squeue", "-h", "-o", "%j"], capture_output=True, text=True, env=env,
                          timeout=30)
    return sum(1 for name in done.stdout.split() if name.startswith("mlproject-")
               and not (new and name in SEEN))


def chain_once(project: Path, env: dict[str, str]) -> tuple[float, float]:
    """(ms until Slurm holds all ten jobs, ms until the command returned)."""
    if ours(env):
        left = subprocess.run(["squeue", "-h", "-o", "%i %j %T %r"], capture_output=True,
                              text=True, env=env, timeout=30).stdout
        sys.exit(f"Slurm still holds jobs of an earlier round:\n{left}")
    start = time.perf_counter()
    command = subprocess.Popen([*mlproject_command(), "run", ".", "-e", f"s{STEPS}", "--backend",
                                "slurm", "--detach"], cwd=project, env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    returned = None
    held = None
    while held is None or returned is None:
        if returned is None and command.poll() is not None:
            returned = (time.perf_counter() - start) * 1000
            if command.returncode != 0:
                err = command.stderr.read().decode(errors="replace") if command.stderr else ""
                sys.exit(f"the detached run exited with {command.returncode}:\n{err}")
        if held is None and ours(env, new=True) >= STEPS:
            held = (time.perf_counter() - start) * 1000
        if time.perf_counter() - start > 60:
            sys.exit("Slurm did not hold the ten jobs within 60 s")
        time.sleep(0.01)
    jobs = _jobs(env)
    SEEN.update(jobs.values())
    subprocess.run(["scancel", "--full", *jobs], env=env, capture_output=True, timeout=30)
    until = time.monotonic() + 60
    while ours(env) and time.monotonic() < until:  # the next round starts on an empty queue
        time.sleep(0.1)
    return held, returned


def _jobs(env: dict[str, str]) -> dict[str, str]:
    """mlproject's jobs that Slurm holds: id -> name."""
    done = subprocess.run(["squeue", "-h", "-o", "%i %j"], capture_output=True, text=True, env=env,
                          timeout=30)
    rows = (line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    return {job: name for job, name in rows if name.startswith("mlproject-")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each case (default 7)")
    args = parser.parse_args()
    from tests import slurmcluster

    base = Path(tempfile.mkdtemp(prefix="mlproject-bench-slurm-"))
    with slurmcluster.running() as cluster:
        project = make_project(base, project_text(), ".mlproject/\n")
        env = {**os.environ, **cluster.environ(), "MLPROJECT_CACHE_DIR": str(base / "cache")}
        cases = {
            "sbatch --wait": ["sbatch", "--wait", "--quiet", f"--output={base}/bare.out",
                              f"--chdir={project}", f"--wrap={COMMAND}"],
            "mlproject run": [*mlproject_command(), "run", ".", "-e", "noop", "--backend",
                              "slurm"],
        }
        times = interleaved(cases, project, env, args.runs)
        chain_once(project, env)  # untimed: warm
        chains = [chain_once(project, env) for _ in range(args.runs)]
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        print(f"{name:>22}: {value:8.1f} ms (median of {args.runs})")
    overhead = medians["mlproject run"] - medians["sbatch --wait"]
    print(f"{'overhead':>22}: {overhead:8.1f} ms (target <= {TARGET_OVERHEAD_MS:g} ms: "
          f"{verdict(overhead, TARGET_OVERHEAD_MS, inclusive=True)})")
    held = statistics.median(c[0] for c in chains)
    returned = statistics.median(c[1] for c in chains)
    print(f"{'10-step chain held':>22}: {held:8.1f} ms (median of {args.runs}; target < "
          f"{TARGET_CHAIN_MS:g} ms: {verdict(held, TARGET_CHAIN_MS, inclusive=False)})")
    print(f"{'--detach returned':>22}: {returned:8.1f} ms (median of {args.runs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
