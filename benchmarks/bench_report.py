"""`mlproject report` (markdown, no plots) on locks of 20 steps x 50 metrics: the wall time of
the whole command, Python's start-up included, as CI runs it.

    python benchmarks/bench_report.py [--runs 15] [--steps 20] [--metrics 50]

A temporary Git repository holds an MLproject file of STEPS entry points (each gated on two
metrics, with parameters, a data pin and 30 pinned packages), the base lock committed on `main`
and the head lock in the working tree, every metric and some parameters, pins and packages
changed. One untimed run warms the spec cache; the figure is the median of the timed runs.

An installed mlproject starts from bytecode (pip compiles it at install). An editable checkout
run under PYTHONDONTWRITEBYTECODE compiles every module on every start (~60 ms here), so by
default the runs write and use bytecode under the temporary directory (PYTHONPYCACHEPREFIX; the
checkout is not touched); `--as-is` keeps this environment's settings.
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

from bench_run import mlproject_command

TARGET_MS = 300.0


def spec_text(steps: int) -> str:
    lines = ["name: bench", "entry_points:"]
    for i in range(steps):
        lines += [f"  step{i:02d}:", "    parameters:", "      lr: {type: float, default: 0.1}",
                  '    command: "python -c pass {lr}"', f"    metrics: metrics/step{i:02d}.json",
                  "    gates:", "      metric_00: {min: 0.1, not_worse_than: base, tolerance: 0.01}",
                  "      metric_01: {max: 100}"]
    return "\n".join(lines) + "\n"


def lock(steps: int, metrics: int, shift: float) -> str:
    from mlproject.runner.gitops.lockfile import Lock, LockEntry

    entries = {}
    for i in range(steps):
        packages = {f"package-{k:02d}": f"1.{k}.{int(shift * 10) if k % 5 == 0 else 0}"
                    for k in range(30)}
        entries[f"step{i:02d}"] = LockEntry(
            fingerprint=f"{i:02d}{shift}".ljust(64, "0"),
            parameters={"lr": str(0.1 + shift), "epochs": "10"}, command="python -c pass",
            code="c" * 64,
            environment={"name": "train", "kind": "python", "key": f"key{shift}", "input": "i",
                         "digest": f"d{shift}", "packages": packages},
            data={"raw": {"path": "data/raw", "md5": f"{shift}".ljust(32, "a") + ".dir",
                          "size": 1000 + int(shift * 100), "nfiles": 10, "repo": None,
                          "rev": None, "sha": None}},
            outputs={f"out/step{i:02d}.bin": "b" * 32},
            metrics={f"metric_{j:02d}": 0.5 + j + shift * (j % 3) for j in range(metrics)})
    return Lock(entries).to_text()


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def make_repo(base_dir: Path, steps: int, metrics: int) -> Path:
    root = base_dir / "project"
    root.mkdir()
    (root / "MLproject").write_text(spec_text(steps))
    (root / ".gitignore").write_text(".mlproject/\n")
    (root / "mlproject.lock").write_text(lock(steps, metrics, 0.0))
    env = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@b"}
    os.environ.update(env)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    (root / "mlproject.lock").write_text(lock(steps, metrics, 0.5))
    return root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--metrics", type=int, default=50)
    parser.add_argument("--as-is", action="store_true",
                        help="keep PYTHONDONTWRITEBYTECODE and the bytecode location as they are")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLPROJECT_CACHE_DIR"] = str(Path(tmp) / "cache")
        root = make_repo(Path(tmp), args.steps, args.metrics)
        if not args.as_is:
            os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
            os.environ["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        command = [*mlproject_command(), "report", str(root), "--base", "main"]
        first = subprocess.run(command, capture_output=True, text=True)
        if first.returncode != 0:
            sys.stderr.write(first.stderr)
            return 1
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            times.append((time.perf_counter() - start) * 1000)
        median = statistics.median(times)
        verdict = "PASS" if median < TARGET_MS else "MISS"
        print(f"mlproject report, {args.steps} steps x {args.metrics} metrics "
              f"({len(first.stdout):,} characters of markdown)")
        if os.environ.get("PYTHONDONTWRITEBYTECODE"):
            print("  note: PYTHONDONTWRITEBYTECODE is set (--as-is): modules without .pyc files "
                  "are compiled on every start")
        print(f"  median of {args.runs} runs: {median:7.1f} ms   (min {min(times):.1f}, max "
              f"{max(times):.1f})   target < {TARGET_MS:.0f} ms   {verdict}")
        return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
