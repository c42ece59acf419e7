"""What mlproject adds to a step on Ray: the wall time of `mlproject run --backend ray` of a
trivial step against a bare Ray job of the same command (`JobSubmissionClient.submit_job`, then
its status polled every 50 ms to the end, from a fresh Python as the CLI is), medians, the cases
interleaved (bench_run.interleaved). Target: at most 1 s more.

    python benchmarks/bench_ray.py [--runs 7]

Ray binds every interface, so the benchmark makes a private network namespace (only `lo`),
starts the tests' Ray head in it (tests/raycluster.py), and runs every case inside it with
`ip netns exec`; run as root.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_run import interleaved, make_project, mlproject_command, verdict

TARGET_OVERHEAD_MS = 1000.0
COMMAND = "echo ok"
NOOP = f'name: bench\nentry_points:\n  noop:\n    command: "{COMMAND}"\n'
INSIDE = "MLPROJECT_BENCH_RAY_INSIDE"

BARE = """
import sys, time
from ray.job_submission import JobSubmissionClient
client = JobSubmissionClient(sys.argv[1])
job = client.submit_job(entrypoint=sys.argv[2])
while not client.get_job_status(job).is_terminal():
    time.sleep(0.05)
assert client.get_job_status(job).value == "SUCCEEDED"
"""


def inside(runs: int) -> int:
    """In the namespace: the head, then the cases."""
    from tests import raycluster

    base = Path(tempfile.mkdtemp(prefix="mlproject-bench-ray-"))
    with raycluster.head() as cluster:
        project = make_project(base, NOOP, ".mlproject/\n")
        env = {**os.environ, "MLPROJECT_RAY_ADDRESS": cluster.address,
               "MLPROJECT_CACHE_DIR": str(base / "cache"), "RAY_USAGE_STATS_ENABLED": "0"}
        cases = {
            "bare Ray job": [sys.executable, "-c", BARE, cluster.address, COMMAND],
            "mlproject run": [*mlproject_command(), "run", ".", "-e", "noop", "--backend", "ray"],
        }
        times = interleaved(cases, project, env, runs)
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        print(f"{name:>14}: {value:8.1f} ms (median of {runs})")
    overhead = medians["mlproject run"] - medians["bare Ray job"]
    print(f"{'overhead':>14}: {overhead:8.1f} ms (target <= {TARGET_OVERHEAD_MS:g} ms: "
          f"{verdict(overhead, TARGET_OVERHEAD_MS, inclusive=True)})")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each case (default 7)")
    args = parser.parse_args()
    if os.environ.get(INSIDE) == "1":
        return inside(args.runs)
    from tests import raycluster

    raycluster.check()
    with raycluster.netns() as name:
        done = subprocess.run([raycluster._tool("ip"), "netns", "exec", name, sys.executable,
                               __file__, "--runs", str(args.runs)],
                              env={**os.environ, INSIDE: "1"})
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
