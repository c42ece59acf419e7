"""The check of pinned data before a step runs: mlproject's verification of 1 GB in 1,000 files,
tracked by DVC as one directory, against `dvc status` on the same repository; and the cold check
(no stat cache) against plain `hashlib` md5 of the same files.

    python benchmarks/bench_data.py [--size-mb 1000] [--runs 5] [--dir PATH]

The data (random bytes, 1 MiB a file) and its DVC repository are made once under the temporary
directory and reused by later runs. Warm cases take turns, run after run, so that the noise of a
shared machine falls on all of them alike; figures are medians. DVC is isolated from the user's
configuration (its config and site cache directories are temporary).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 0.5  # mlproject's warm check / `dvc status`
TARGET_WARM_S = 0.3
MIB = 1 << 20

CHECK = """\
import sys
from mlproject.runner.data import check, pin_input
from mlproject.spec.model import DataInput
pin = pin_input(sys.argv[1], DataInput("bench", "data"))
sys.exit(0 if check(sys.argv[1], pin).ok else 1)
"""


def dvc_command() -> list[str]:
    script = Path(sys.executable).parent / "dvc"
    return [str(script)] if script.exists() else [sys.executable, "-m", "dvc"]


def environment(home: Path) -> dict[str, str]:
    return {**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(home / "site"),
            "DVC_GLOBAL_CONFIG_DIR": str(home / "global"), "DVC_SYSTEM_CONFIG_DIR": str(home / "system"),
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": str(home / "gitconfig"),
            "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
            "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
            "MLPROJECT_CACHE_DIR": str(home / "mlproject-cache")}


def run(command: list[str], cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")


def make_repository(repo: Path, size_mb: int, env: dict[str, str]) -> None:
    """Once: size_mb files of 1 MiB of random bytes in data/, `dvc add`ed and committed."""
    if (repo / ".bench-complete").exists():
        return
    shutil.rmtree(repo, ignore_errors=True)
    (repo / "data").mkdir(parents=True)
    print(f"writing {size_mb} MiB of data into {repo} (once; later runs reuse it)", file=sys.stderr)
    for i in range(size_mb):
        (repo / "data" / f"part-{i:05d}.bin").write_bytes(os.urandom(MIB))
    run(["git", "init", "-q", "-b", "main"], repo, env)
    run(dvc_command() + ["init", "-q"], repo, env)
    run(dvc_command() + ["add", "-q", "data"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-q", "-m", "data"], repo, env)
    (repo / ".bench-complete").write_text("")


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    return elapsed


def plain_md5(files: list[Path]) -> float:
    start = time.perf_counter()
    for path in files:
        digest = hashlib.md5()
        with open(path, "rb") as handle:
            while chunk := handle.read(MIB):
                digest.update(chunk)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1000, help="MiB of data, 1 MiB a file")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", type=Path, help="where to keep the data (default: a temp dir)")
    args = parser.parse_args()
    base = args.dir or Path(tempfile.gettempdir()) / f"mlproject-bench-data-{args.size_mb}"
    env = environment(base / "home")
    repo = base / "repo"
    make_repository(repo, args.size_mb, env)
    files = sorted((repo / "data").iterdir())
    size = sum(f.stat().st_size for f in files)
    newest = max(f.stat().st_mtime for f in files)
    time.sleep(max(0.0, newest + 2.5 - time.time()))  # younger files are never remembered

    from mlproject.runner.data import check, pin_input
    from mlproject.spec.model import DataInput

    stat_cache = repo / ".mlproject" / "cache" / "data"
    pin = pin_input(str(repo), DataInput("bench", "data"))
    cold, plain = [], []
    for _ in range(args.runs):
        shutil.rmtree(stat_cache, ignore_errors=True)
        start = time.perf_counter()
        if not check(str(repo), pin).ok:
            sys.exit("the data does not match its pin: remove the benchmark directory " + str(base))
        cold.append(time.perf_counter() - start)
        plain.append(plain_md5(files))

    ours = [sys.executable, "-c", CHECK, str(repo)]
    dvc = dvc_command() + ["status", "-q"]
    timed(ours, repo, env), timed(dvc, repo, env)  # warm both: stat cache, DVC's state db
    process, inproc, dvc_s = [], [], []
    for _ in range(args.runs):
        process.append(timed(ours, repo, env))
        start = time.perf_counter()
        check(str(repo), pin)
        inproc.append(time.perf_counter() - start)
        dvc_s.append(timed(dvc, repo, env))

    med = statistics.median
    ratio = med(process) / med(dvc_s)
    mib = size / MIB
    version = subprocess.run(dvc_command() + ["--version"], capture_output=True, text=True,
                             env=env).stdout.strip()
    print(f"data: {len(files)} files, {mib:.0f} MiB, tracked as one directory (dvc {version}); "
          f"Python {sys.version.split()[0]}, {os.cpu_count()} cores; medians of {args.runs} runs")
    print(f"warm check, mlproject (new process: resolve + check)  {med(process) * 1000:8.1f} ms")
    print(f"warm check, mlproject (in process: check)             {med(inproc) * 1000:8.1f} ms")
    print(f"warm check, `dvc status`                              {med(dvc_s) * 1000:8.1f} ms")
    verdict = "PASS" if ratio <= TARGET_RATIO else "MISS"
    print(f"    mlproject / dvc                                   {ratio:8.2f}    "
          f"target <= {TARGET_RATIO:.2f}    {verdict}")
    verdict = "PASS" if med(process) < TARGET_WARM_S else "MISS"
    print(f"    mlproject warm check                              {med(process) * 1000:8.1f} ms "
          f"target <  {TARGET_WARM_S * 1000:.0f} ms  {verdict}")
    # "cold": no stat cache, every byte hashed; the files themselves are in the page cache
    print(f"cold check, mlproject (no stat cache)                 {med(cold):8.2f} s  "
          f"{mib / med(cold):6.0f} MiB/s")
    print(f"plain hashlib md5, one thread, same files             {med(plain):8.2f} s  "
          f"{mib / med(plain):6.0f} MiB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
