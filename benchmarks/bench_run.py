"""What mlproject adds to a run: the wall time of `mlproject run` on a no-op entry point against
the bare command, and the start-up of `mlproject --help`; `mlflow run` beside them when mlflow is
installed in this environment.

    python benchmarks/bench_run.py [--runs 15]

Every case runs once untimed (warm caches), then the cases take turns, run after run, so that
the noise of a shared machine falls on all of them alike. Figures are medians.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_OVERHEAD_MS = 150.0  # mlproject run - bare command
TARGET_HELP_MS = 100.0  # mlproject --help

MLPROJECT = """\
name: bench
entry_points:
  noop:
    command: "python -c pass"
"""


def mlproject_command() -> list[str]:
    """The console script of this interpreter's environment, else the module."""
    script = Path(sys.executable).parent / "mlproject"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mlproject.runner"]


def mlflow_command() -> list[str] | None:
    if importlib.util.find_spec("mlflow") is None:
        return None
    script = Path(sys.executable).parent / "mlflow"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mlflow"]


def make_project(base: Path, text: str = MLPROJECT, ignored: str = "mlruns/\n") -> Path:
    """A project of one commit in `base`/project: this MLproject file, this .gitignore."""
    project = base / "project"
    project.mkdir()
    (project / "MLproject").write_text(text)
    (project / ".gitignore").write_text(ignored)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "bench"]):
        subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost",
                        *args], cwd=project, check=True, capture_output=True)
    return project


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Wall time of one run in milliseconds; a failing command stops the benchmark."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        sys.exit(f"`{' '.join(command)}` exited with {done.returncode}:\n"
                 f"{done.stderr.decode(errors='replace')}")
    return elapsed


def interleaved(cases: dict[str, list[str]], cwd: Path, env: dict[str, str],
                runs: int) -> dict[str, list[float]]:
    """Each case once untimed (warm caches, page cache, .pyc files), then `runs` rounds in which
    the cases take turns, so that the noise of a shared machine falls on all of them alike."""
    for command in cases.values():
        timed(command, cwd, env)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, command in cases.items():
            times[name].append(timed(command, cwd, env))
    return times


def verdict(value: float, target: float, inclusive: bool) -> str:
    ok = value <= target if inclusive else value < target
    return "PASS" if ok else "MISS"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs of each case (default 15)")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="mlproject-bench-"))
    try:
        env = {
            **os.environ,
            # `python` in a step is this interpreter, as mlproject arranges for a local step
            "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
            "MLPROJECT_CACHE_DIR": str(base / "cache"),
            "MLFLOW_TRACKING_URI": (base / "mlruns").as_uri(),
            "MLFLOW_ALLOW_FILE_STORE": "true",  # mlflow >= 3.17 refuses a file store otherwise
            "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
            "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
        }
        os.environ.update({k: env[k] for k in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL",
                                               "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL")})
        project = make_project(base)
        mlproject = mlproject_command()
        bash = shutil.which("bash") or "/bin/sh"  # mlproject runs a step with `bash -c`
        cases = {
            "bare": [bash, "-c", "python -c pass"],
            "run": [*mlproject, "run", str(project), "-e", "noop"],
            "help": [*mlproject, "--help"],
        }
        mlflow = mlflow_command()
        if mlflow:
            cases["mlflow"] = [*mlflow, "run", ".", "--env-manager", "local", "-e", "noop"]

        times = interleaved(cases, project, env, args.runs)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    med = {name: statistics.median(values) for name, values in times.items()}
    overhead = med["run"] - med["bare"]
    print(f"mlproject benchmark: medians of {args.runs} interleaved runs, "
          f"Python {platform.python_version()} on {platform.system()} {platform.machine()}, "
          f"{os.cpu_count()} CPUs")
    print(f"  mlproject: {' '.join(mlproject)}")
    print(f"  (a) bare command `bash -c 'python -c pass'`       {med['bare']:8.1f} ms")
    print(f"  (b) mlproject run <project> -e noop                {med['run']:8.1f} ms")
    print(f"      overhead (b - a)                               {overhead:8.1f} ms   "
          f"target <= {TARGET_OVERHEAD_MS:.0f} ms   "
          f"{verdict(overhead, TARGET_OVERHEAD_MS, inclusive=True)}")
    print(f"  (c) mlproject --help                               {med['help']:8.1f} ms   "
          f"target <  {TARGET_HELP_MS:.0f} ms   "
          f"{verdict(med['help'], TARGET_HELP_MS, inclusive=False)}")
    if "mlflow" in med:
        print(f"  (d) mlflow run . --env-manager local -e noop       {med['mlflow']:8.1f} ms   "
              f"({med['mlflow'] / med['run']:.0f}x mlproject run)")
    else:
        print("  (d) mlflow run: skipped, mlflow is not installed in this environment")
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("  note: PYTHONDONTWRITEBYTECODE is set: modules without .pyc files (an editable "
              "install) are compiled on every start")
    spread = {name: (min(v), max(v)) for name, v in times.items()}
    print("  range (min-max, ms): " + ", ".join(
        f"{name} {lo:.0f}-{hi:.0f}" for name, (lo, hi) in spread.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
