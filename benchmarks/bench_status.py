"""`mlproject status` against `mlproject plan` on a small project (three steps, one output, a
metrics file, everything run and committed with its lock): status observes as plan does, and
reads the lock and hashes the outputs besides, so it should cost about the same.

    python benchmarks/bench_status.py [--runs 15]

Every case runs once untimed (warm caches), then the cases take turns. Figures are medians.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_run import interleaved, mlproject_command, verdict

TARGET_RATIO = 1.5  # status / plan

MLPROJECT = """\
name: bench
entry_points:
  prepare:
    parameters: {n: {type: float, default: 3}}
    command: "python -c \\"open('data.txt', 'w').write('x' * int({n}))\\""
    outputs: [data.txt]
  train:
    needs: [prepare]
    command: "python -c \\"open('metrics.yaml', 'w').write('acc: 0.5')\\""
    metrics: metrics.yaml
  lint:
    command: "python -c pass"
"""


def make_project(base: Path, env: dict[str, str]) -> Path:
    project = base / "project"
    project.mkdir()
    (project / "MLproject").write_text(MLPROJECT)
    (project / ".gitignore").write_text("data.txt\nmetrics.yaml\n")
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=project, check=True)
    for entry in ("train", "lint"):
        subprocess.run([*mlproject_command(), "run", ".", "-e", entry], cwd=project, env=env,
                       check=True, capture_output=True)
    for args in (["add", "-A"], ["commit", "-q", "-m", "bench"]):
        subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com",
                        *args], cwd=project, check=True, capture_output=True)
    return project


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs of each case (default 15)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="mlproject-bench-"))
    try:
        env = {**os.environ, "MLPROJECT_CACHE_DIR": str(base / "cache")}
        project = make_project(base, env)
        cases = {
            "plan -e train": [*mlproject_command(), "plan", ".", "-e", "train"],
            "status": [*mlproject_command(), "status", "."],
            "status --check": [*mlproject_command(), "status", ".", "--check"],
        }
        times = interleaved(cases, project, env, args.runs)
        median = {name: statistics.median(values) for name, values in times.items()}
        for name, value in median.items():
            print(f"{name:16} {value:7.1f} ms")
        ratio = median["status"] / median["plan -e train"]
        print(f"status / plan    {ratio:7.2f}   target <= {TARGET_RATIO}  "
              f"{verdict(ratio, TARGET_RATIO, True)}")
        return 0
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":  # run as a script: bench_run is imported from beside it
    sys.exit(main())
