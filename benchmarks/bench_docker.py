"""What the docker backend adds to a container: the wall time of `mlproject run --backend docker`
on a trivial entry point against a bare `docker run --rm IMAGE true` of the same image.

    DOCKER_HOST=unix:///path/docker.sock python benchmarks/bench_docker.py \
        [--image mlproject-test/python:3.11] [--network none] [--runs 9]

The engine is the one DOCKER_HOST names (else the default socket) and the `docker` CLI the one on
PATH. Every case runs once untimed (warm caches), then the cases take turns, run after run, so
that the noise of a shared machine falls on all of them alike. Figures are medians.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_OVERHEAD_MS = 150.0  # mlproject run --backend docker - docker run --rm

MLPROJECT = """\
name: bench
environments:
  box:
    docker: {{image: "{image}"}}
entry_points:
  noop:
    environment: box
    command: "true"
  local_noop:
    command: "true"
"""


def mlproject_command() -> list[str]:
    """The console script of this interpreter's environment, else the module."""
    script = Path(sys.executable).parent / "mlproject"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mlproject.runner"]


def make_project(base: Path, image: str) -> Path:
    project = base / "project"
    project.mkdir()
    (project / "MLproject").write_text(MLPROJECT.format(image=image))
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "bench"]):
        subprocess.run(["git", *args], cwd=project, check=True, capture_output=True)
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", default="mlproject-test/python:3.11",
                        help="an image the engine has (default: the tests' image)")
    parser.add_argument("--network", default="none",
                        help="`docker run --network` for both cases (default none)")
    parser.add_argument("--runs", type=int, default=9, help="timed runs of each case (default 9)")
    args = parser.parse_args()
    docker = shutil.which("docker")
    if docker is None:
        sys.exit("the docker CLI is not on PATH")

    base = Path(tempfile.mkdtemp(prefix="mlproject-bench-docker-"))
    try:
        env = {
            **os.environ,
            "MLPROJECT_CACHE_DIR": str(base / "cache"),
            "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
            "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
        }
        os.environ.update({k: env[k] for k in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL",
                                               "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL")})
        project = make_project(base, args.image)
        settings = json.dumps({"network": args.network})
        cases = {
            "bare": [docker, "run", "--rm", "--network", args.network, args.image, "true"],
            "run": [*mlproject_command(), "run", str(project), "-e", "noop", "--force",
                    "--backend", "docker", "--backend-config", settings],
            # for reference: what mlproject itself costs, on the local backend
            "local": [*mlproject_command(), "run", str(project), "-e", "local_noop", "--force"],
            "true": [shutil.which("true") or "/bin/true"],
        }
        for command in cases.values():  # warm: caches, page cache, .pyc files
            timed(command, project, env)
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, command in cases.items():
                times[name].append(timed(command, project, env))
    finally:
        shutil.rmtree(base, ignore_errors=True)

    med = {name: statistics.median(values) for name, values in times.items()}
    overhead = med["run"] - med["bare"]
    verdict = "PASS" if overhead <= TARGET_OVERHEAD_MS else "MISS"
    print(f"mlproject docker benchmark: medians of {args.runs} interleaved runs, "
          f"Python {platform.python_version()} on {platform.system()} {platform.machine()}, "
          f"{os.cpu_count()} CPUs; engine {os.environ.get('DOCKER_HOST') or 'default socket'}")
    print(f"  (a) docker run --rm {args.image} true            {med['bare']:8.1f} ms")
    print(f"  (b) mlproject run --backend docker -e noop        {med['run']:8.1f} ms")
    print(f"      overhead (b - a)                              {overhead:8.1f} ms   "
          f"target <= {TARGET_OVERHEAD_MS:.0f} ms   {verdict}")
    own = med["local"] - med["true"]
    print(f"  for reference: mlproject run (local backend) of `true`, over `true` itself:   "
          f"{own:8.1f} ms;")
    print(f"      what the docker backend adds beyond that                 {overhead - own:8.1f} ms")
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("  note: PYTHONDONTWRITEBYTECODE is set: modules without .pyc files (an editable "
              "install) are compiled on every start")
    spread = {name: (min(v), max(v)) for name, v in times.items()}
    print("  range (min-max, ms): " + ", ".join(
        f"{name} {lo:.0f}-{hi:.0f}" for name, (lo, hi) in spread.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
