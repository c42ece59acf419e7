"""A sweep's cost on the local backend: a sweep of N points of a trivial entry point against
the same commands run by a shell loop (what a point costs mlproject beyond its command), that
every point left a complete record, and how long its table takes to list again.

    python benchmarks/bench_sweep.py [--points 1000] [--repeat 3] [--jobs 1]

The shell loop runs each point's command as mlproject does (`bash -c COMMAND` in the project),
so the difference is mlproject's own: resolving the points, the records, the guard, the log.
Each repetition runs the loop and a fresh sweep in turn (a new project each time, so that no
point is skipped as done); figures are medians.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_run import make_project, mlproject_command

# mlproject as an installed package runs from its bytecode (pip compiles it at install time): a
# shell that forbids writing it would time Python compiling mlproject's modules on every start
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

TARGET_OVERHEAD_MS = 100.0  # per point, over the shell loop
TARGET_TABLE_S = 1.0  # `sweep show ID` of a 1,000-point sweep

SPEC = """\
name: bench-sweep
entry_points:
  main:
    parameters: {i: {type: int, default: 0}}
    command: "echo {i}"
"""


def _loop(project: Path, points: int) -> float:
    script = f"for i in $(seq 0 {points - 1}); do bash -c \"echo $i\" > /dev/null; done"
    start = time.perf_counter()
    subprocess.run(["bash", "-c", script], cwd=project, check=True)
    return time.perf_counter() - start


def _sweep(project: Path, points: int, jobs: int) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([*mlproject_command(), "sweep", "-e", "main", "--grid",
                           f"i=range:0:{points - 1}:1", "--env", "local", "--jobs", str(jobs),
                           "--json"], cwd=project, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"the sweep failed: {done.stderr[-2000:]}")
    return took, json.loads(done.stdout)["id"]


def _complete(project: Path, points: int) -> int:
    runs = project / ".mlproject" / "runs"
    complete = 0
    for run_dir in runs.iterdir():
        record = json.loads((run_dir / "run.json").read_text())
        complete += record["status"] == "succeeded" and record["ended_at"] is not None
    return complete


def _show(project: Path, sweep_id: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([*mlproject_command(), "sweep", "show", sweep_id], cwd=project,
                       check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    loops, sweeps, shows = [], [], []
    for n in range(args.repeat):
        base = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
        try:
            project = make_project(base, SPEC, ".mlproject/\n")
            loops.append(_loop(project, args.points))
            took, sweep_id = _sweep(project, args.points, args.jobs)
            sweeps.append(took)
            complete = _complete(project, args.points)
            if complete != args.points:
                print(f"FAIL: {complete} complete records of {args.points}")
                return 1
            shows.append(_show(project, sweep_id, 5))
            print(f"  run {n + 1}: loop {loops[-1]:.2f}s, sweep {took:.2f}s, "
                  f"{complete} complete records, sweep show {shows[-1] * 1000:.0f} ms")
        finally:
            shutil.rmtree(base, ignore_errors=True)
    loop, sweep, show = (statistics.median(x) for x in (loops, sweeps, shows))
    overhead = (sweep - loop) / args.points * 1000
    print(f"{args.points} points, --jobs {args.jobs}, medians of {args.repeat}:")
    print(f"  shell loop           {loop:8.2f} s  ({loop / args.points * 1000:.1f} ms a point)")
    print(f"  mlproject sweep      {sweep:8.2f} s  ({sweep / args.points * 1000:.1f} ms a point)")
    print(f"  overhead per point   {overhead:8.1f} ms  (target <= {TARGET_OVERHEAD_MS:.0f} ms: "
          f"{'met' if overhead <= TARGET_OVERHEAD_MS else 'NOT MET'})")
    print(f"  sweep show (table)   {show * 1000:8.0f} ms  (target < {TARGET_TABLE_S * 1000:.0f} ms:"
          f" {'met' if show < TARGET_TABLE_S else 'NOT MET'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
