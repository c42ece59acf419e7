"""What the docker backend adds to a container: the wall time of `mlproject run --backend docker`
on a trivial entry point against a bare `docker run --rm IMAGE true` of the same image; and what
a reused Python environment built inside the container adds over the same image without one.

    DOCKER_HOST=unix:///path/docker.sock python benchmarks/bench_docker.py \
        [--image mlproject-test/python:3.11] [--network none] [--runs 9]

The engine is the one DOCKER_HOST names (else the default socket) and the `docker` CLI the one on
PATH. Every case runs once untimed (warm caches), then the cases take turns, run after run, so
that the noise of a shared machine falls on all of them alike. Figures are medians.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_run import interleaved, mlproject_command

TARGET_OVERHEAD_MS = 150.0  # mlproject run --backend docker - docker run --rm
TARGET_ENV_MS = 300.0  # a reused in-container Python environment - the same image without one

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
  env_noop:
    environment: py
    command: "true"
"""
PYTHON_ENV = """\
  py: {{python: "{python}", requirements: requirements.txt}}
"""


def make_project(base: Path, image: str, python: str) -> Path:
    """A project whose Python environment is one local wheel (the containers have no network)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from condachannel import build_wheel

    project = base / "project"
    project.mkdir()
    text = MLPROJECT.format(image=image)
    text = text.replace("entry_points:\n", PYTHON_ENV.format(python=python) + "entry_points:\n")
    (project / "MLproject").write_text(text)
    wheel = build_wheel(base / "wheels")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    (project / "requirements.txt").write_text(
        f"--no-index\n--find-links {wheel.parent}\ntinypip==1.0 --hash=sha256:{digest}\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "bench"]):
        subprocess.run(["git", *args], cwd=project, check=True, capture_output=True)
    return project


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
        python = subprocess.run([docker, "run", "--rm", "--network", args.network, args.image,
                                 "python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                capture_output=True, text=True, check=True).stdout.strip()
        project = make_project(base, args.image, python)
        settings = json.dumps({"network": args.network, "base_image": args.image,
                               "pull": "never"})
        cases = {
            "bare": [docker, "run", "--rm", "--network", args.network, args.image, "true"],
            "run": [*mlproject_command(), "run", str(project), "-e", "noop", "--force",
                    "--backend", "docker", "--backend-config", settings],
            "env": [*mlproject_command(), "run", str(project), "-e", "env_noop", "--force",
                    "--backend", "docker", "--backend-config", settings],
            # for reference: what mlproject itself costs, on the local backend
            "local": [*mlproject_command(), "run", str(project), "-e", "local_noop", "--force"],
            "true": [shutil.which("true") or "/bin/true"],
        }
        times = interleaved(cases, project, env, args.runs)
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
    env_cost = med["env"] - med["run"]
    env_verdict = "PASS" if env_cost <= TARGET_ENV_MS else "MISS"
    print(f"  (c) the same with a Python environment built in the container, reused "
          f"{med['env']:8.1f} ms")
    print(f"      what the reused environment adds (c - b)      {env_cost:8.1f} ms   "
          f"target <= {TARGET_ENV_MS:.0f} ms   {env_verdict}")
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
