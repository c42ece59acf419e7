"""Python environments: the first build of an environment with a small scientific stack (numpy,
pandas, scikit-learn) and a reused one, for `mlproject run` and, side by side, for
`mlflow run --env-manager virtualenv` and `--env-manager uv` on the same hash-pinned requirements.

    python benchmarks/bench_envs.py [--quick] [--first-runs 3] [--reuse-runs 15]

mlflow is not a dependency: unless it can be imported here, the benchmark makes a virtual
environment for it in its temporary directory (`pip install mlflow virtualenv`, a minute or two;
`--mlflow-venv DIR` keeps one between runs). `--quick` skips MLflow. Everything else (caches,
environment stores, MLflow's tracking store) lives in one temporary directory, removed at the end.

The cases take turns, run after run, so that the noise of a shared machine falls on all of them
alike. Figures are medians.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

TARGET_REUSE_MS = 50.0  # mlproject run in a built environment - mlproject run with none
TARGET_FIRST_RATIO = 5.0  # first build: mlflow --env-manager virtualenv / mlproject

PACKAGES = ("numpy", "pandas", "scikit-learn")
IMPORTS = "import numpy, pandas, sklearn"

MLPROJECT_ENV = """\
name: bench-envs
python_env: python_env.yaml
entry_points:
  noop:
    command: "python -c pass"
"""

MLPROJECT_LOCAL = """\
name: bench-envs-local
entry_points:
  noop:
    command: "python -c pass"
"""

# MLflow's virtualenv manager runs `pyenv install --skip-existing <python>`: a bare X.Y makes pyenv
# pick the newest X.Y.z it knows of and download it, so the full version of this interpreter.
PYTHON_ENV = """\
python: "{python}"
build_dependencies:
  - pip
dependencies:
  - -r requirements.txt
"""

GIT_ID = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
          "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}


# --- running things --------------------------------------------------------------------------

@dataclass
class Case:
    """Timed runs of one thing; a failed run is kept as a message, not a time."""
    label: str
    times: list[float] = field(default_factory=list)  # seconds
    failures: list[str] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None


def tail(text: bytes, lines: int = 12) -> str:
    kept = [line for line in text.decode(errors="replace").splitlines()
            if "is ignored: it is neither a file nor a directory" not in line]  # pip.conf noise
    return "\n".join("      | " + line for line in kept[-lines:])


def run_timed(commands: Sequence[Sequence[str]], cwd: Path, env: dict[str, str],
              timeout: float = 900) -> tuple[float | None, str]:
    """Run the commands one after the other; their wall time in seconds (None when one fails)
    and, on failure, what it said."""
    start = time.perf_counter()
    for command in commands:
        try:
            done = subprocess.run(list(command), cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            return None, f"`{' '.join(command)}` timed out after {timeout:.0f}s\n{tail(exc.output or b'')}"
        except OSError as exc:
            return None, f"`{' '.join(command)}` could not start: {exc}"
        if done.returncode != 0:
            return None, f"`{' '.join(command)}` exited with {done.returncode}:\n{tail(done.stdout)}"
    return time.perf_counter() - start, ""


def measure(case: Case, commands: Sequence[Sequence[str]], cwd: Path, env: dict[str, str],
            prepare: Callable[[], None] | None = None, cleanup: Callable[[], None] | None = None) -> None:
    if prepare:
        prepare()
    seconds, error = run_timed(commands, cwd, env)
    if seconds is None:
        case.failures.append(error)
        print(f"  ! {case.label}: failed\n{error}", file=sys.stderr)
    else:
        case.times.append(seconds)
    if cleanup:
        cleanup()


def check(command: Sequence[str], cwd: Path, env: dict[str, str], what: str) -> str:
    done = subprocess.run(list(command), cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True)
    if done.returncode != 0:
        sys.exit(f"{what}: `{' '.join(command)}` exited with {done.returncode}:\n"
                 f"{done.stderr.decode(errors='replace')}{done.stdout.decode(errors='replace')}")
    return done.stdout.decode()


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- tools -----------------------------------------------------------------------------------

def mlproject_command() -> list[str]:
    script = Path(sys.executable).parent / "mlproject"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mlproject.runner"]


def uv_binary() -> str:
    """The uv that mlproject uses (its dependency), else uv on PATH."""
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found,import-untyped,unused-ignore]

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if not found:
            sys.exit("uv is not installed (it is a dependency of mlproject)")
        return found


def mlflow_command(base: Path, keep: Path | None) -> tuple[list[str] | None, str]:
    """mlflow's console script: this interpreter's when it has mlflow, else one installed into a
    virtual environment made for the benchmark. None and why when it cannot be had."""
    if importlib.util.find_spec("mlflow") is not None:
        script = Path(sys.executable).parent / "mlflow"
        return ([str(script)] if script.exists() else [sys.executable, "-m", "mlflow"]), ""
    venv = keep or base / "mlflow-venv"
    script = venv / "bin" / "mlflow"
    if script.exists():
        return [str(script)], ""
    progress(f"installing mlflow and virtualenv into {venv} (a minute or two)")
    for command in ([sys.executable, "-m", "venv", str(venv)],
                    [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "mlflow",
                     "virtualenv"]):
        seconds, error = run_timed([command], base, dict(os.environ), timeout=1200)
        if seconds is None:
            return None, f"could not install mlflow: {error}"
    return [str(script)], ""


def version_of(command: list[str], env: dict[str, str]) -> str:
    try:
        out = subprocess.run([*command, "--version"], env=env, capture_output=True, timeout=120)
        return out.stdout.decode().strip().split("\n")[0]
    except (OSError, subprocess.TimeoutExpired):
        return "?"


# --- the project -----------------------------------------------------------------------------

def git_commit(project: Path) -> None:
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "bench"]):
        subprocess.run(["git", *args], cwd=project, check=True, capture_output=True)


def pins_of(lock_text: str) -> dict[str, str]:
    return {m.group(1).lower(): m.group(2)
            for m in re.finditer(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", lock_text, re.M)}


def make_projects(base: Path, uv: str, env: dict[str, str]) -> tuple[Path, Path, dict[str, str]]:
    """The project with a python_env.yaml (hash-pinned requirements.txt, and the lock mlproject
    reads), the same project without an environment, and the pins."""
    project = base / "project"
    project.mkdir()
    (project / "requirements.in").write_text("\n".join(PACKAGES) + "\n")
    setup_env = {**env, "UV_CACHE_DIR": str(base / "uv-setup"), "UV_PYTHON_DOWNLOADS": "never"}
    check([uv, "pip", "compile", "--quiet", "--generate-hashes", "--python", sys.executable,
           "requirements.in", "-o", "requirements.txt"], project, setup_env,
          "resolving the requirements")
    (project / "python_env.yaml").write_text(PYTHON_ENV.format(python=platform.python_version()))
    (project / "MLproject").write_text(MLPROJECT_ENV)
    (project / ".gitignore").write_text("mlruns/\n.mlproject/\n")
    # build_dependencies (pip) are not pinned: `mlproject lock` pins them next to the
    # requirements, as python_env.lock, so that nothing is resolved at run time
    check([*mlproject_command(), "lock", str(project)], project,
          {**env, "MLPROJECT_CACHE_DIR": str(base / "cache-setup")}, "mlproject lock")
    pins = pins_of((project / "requirements.txt").read_text())
    locked = pins_of((project / "python_env.lock").read_text())
    if {k: v for k, v in locked.items() if k != "pip"} != pins:
        sys.exit(f"python_env.lock pins differ from requirements.txt: {locked} != {pins}")
    git_commit(project)

    local = base / "project-local"
    local.mkdir()
    (local / "MLproject").write_text(MLPROJECT_LOCAL)
    (local / ".gitignore").write_text("mlruns/\n.mlproject/\n")
    git_commit(local)
    return project, local, locked


# --- report ----------------------------------------------------------------------------------

def fmt_s(case: Case) -> str:
    return f"{case.median:8.2f} s " if case.median is not None else "  FAILED  "


def fmt_ms(case: Case) -> str:
    return f"{case.median * 1000:8.1f} ms" if case.median is not None else "  FAILED  "


def runs(case: Case) -> str:
    failed = f", {len(case.failures)} failed" if case.failures else ""
    return f"n={len(case.times)}{failed}"


def row(label: str, value: str, rest: str = "") -> None:
    print(f"  {label:<52}{value}   {rest}".rstrip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="mlproject only: skip MLflow")
    parser.add_argument("--with-mlflow", action=argparse.BooleanOptionalAction, default=True,
                        help="compare with `mlflow run` (default: yes)")
    parser.add_argument("--mlflow-venv", type=Path, default=None, metavar="DIR",
                        help="where to install mlflow when it cannot be imported here; kept "
                             "(default: in the temporary directory, removed)")
    parser.add_argument("--first-runs", type=int, default=3, help="timed first builds (default 3)")
    parser.add_argument("--reuse-runs", type=int, default=15,
                        help="timed runs of mlproject in a reused environment (default 15)")
    parser.add_argument("--mlflow-reuse-runs", type=int, default=5,
                        help="timed runs of mlflow in a reused environment (default 5)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    with_mlflow = args.with_mlflow and not args.quick

    started = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="mlproject-bench-envs-"))
    os.environ.update(GIT_ID)
    env = {
        **os.environ,
        # `python` in a step without an environment is this interpreter
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
        "MLFLOW_TRACKING_URI": (base / "mlruns").as_uri(),
        "MLFLOW_ALLOW_FILE_STORE": "true",  # mlflow >= 3.17 refuses a file store otherwise
        "UV_PYTHON_DOWNLOADS": "never",
        "PIP_NO_INPUT": "1",
    }
    mlproject = mlproject_command()
    uv = uv_binary()
    try:
        progress("resolving numpy, pandas, scikit-learn with `uv pip compile --generate-hashes`")
        project, local, pins = make_projects(base, uv, env)

        mlflow: list[str] | None = None
        mlflow_note = "skipped (--quick)" if args.quick else "skipped (--no-with-mlflow)"
        if with_mlflow:
            mlflow, problem = mlflow_command(base, args.mlflow_venv)
            mlflow_note = problem if mlflow is None else version_of(mlflow, env)
        # MLflow's uv manager runs `uv` from PATH: the same uv as mlproject's
        mlflow_env = {**env, "PATH": os.pathsep.join([os.path.dirname(uv), env["PATH"]])}

        def mlp_env(cache: Path) -> dict[str, str]:
            return {**env, "MLPROJECT_CACHE_DIR": str(cache)}

        def mlf_env(root: Path, manager: str) -> dict[str, str]:
            extra = {"MLFLOW_ENV_ROOT": str(root)}
            # package caches of MLflow's own, in the temporary directory, on the same file
            # system as the environments (uv hard-links from its cache)
            extra["PIP_CACHE_DIR" if manager == "virtualenv" else "UV_CACHE_DIR"] = \
                str(base / f"pkgcache-mlflow-{manager}")
            return {**mlflow_env, **extra}

        run_mlp = [*mlproject, "run", str(project), "-e", "noop"]
        run_local = [*mlproject, "run", str(local), "-e", "noop"]

        def run_mlf(manager: str) -> list[str]:
            assert mlflow is not None
            return [*mlflow, "run", str(project), "-e", "noop", "--env-manager", manager]

        managers = ("virtualenv", "uv") if mlflow else ()

        # -- 1. cold everything (one run each); these also warm the package caches and build
        #       the environments that are reused in 3
        cold = {"mlproject": Case("mlproject run -e noop")}
        progress("first build with empty package caches: mlproject")
        reuse_cache = base / "mlproject-reuse"
        measure(cold["mlproject"], [run_mlp], project, mlp_env(reuse_cache))
        if not cold["mlproject"].times:
            print("mlproject could not build the environment: nothing more to measure", file=sys.stderr)
            return 1
        warm_uv = reuse_cache / "uv"  # uv's cache, now holding the wheels
        for manager in managers:
            cold[manager] = Case(f"mlflow run --env-manager {manager}")
            progress(f"first build with empty package caches: mlflow --env-manager {manager}")
            measure(cold[manager], [run_mlf(manager)], project,
                    mlf_env(base / f"mlflow-reuse-{manager}", manager))

        # -- 2. first builds: a cold environment store each time, warm package caches
        first = {"mlproject": Case("mlproject run -e noop")}
        for manager in managers:
            if cold[manager].times:
                first[manager] = Case(f"mlflow run -e noop --env-manager {manager}")
        lock_file = project / "python_env.lock"
        bare = {"sync": Case("uv alone: uv venv + uv pip sync --require-hashes"),
                "compile": Case("uv alone, the same with --compile-bytecode")}
        fresh = base / "fresh"

        def fresh_mlproject_cache() -> None:
            shutil.rmtree(fresh, ignore_errors=True)
            fresh.mkdir()
            (fresh / "uv").symlink_to(warm_uv)  # the store is empty; uv's cache is warm

        def remove_fresh() -> None:
            shutil.rmtree(fresh, ignore_errors=True)

        bare_env = {**env, "UV_CACHE_DIR": str(warm_uv)}
        for i in range(args.first_runs):
            progress(f"first builds, warm package caches: round {i + 1} of {args.first_runs}")
            measure(first["mlproject"], [run_mlp], project, mlp_env(fresh),
                    fresh_mlproject_cache, remove_fresh)
            for manager in managers:
                if manager in first:
                    measure(first[manager], [run_mlf(manager)], project,
                            mlf_env(fresh, manager), remove_fresh, remove_fresh)
            # the same install by uv alone, to tell mlproject's share from uv's
            for name, extra in (("sync", []), ("compile", ["--compile-bytecode"])):
                measure(bare[name], [
                    [uv, "venv", "--quiet", "--python", sys.executable, str(fresh / "venv")],
                    [uv, "pip", "sync", "--quiet", "--require-hashes", *extra,
                     "--python", str(fresh / "venv" / "bin" / "python"), str(lock_file)],
                ], project, bare_env, remove_fresh, remove_fresh)

        # -- 3. reused environments, interleaved
        reused = {"local": Case("(a) mlproject run -e noop, no environment"),
                  "mlproject": Case("(b) mlproject run -e noop, built environment")}
        mlf_reused: dict[str, Case] = {}
        if mlflow:
            mlf_reused["local"] = Case("(c) mlflow run -e noop --env-manager local")
            for manager in managers:
                if cold[manager].times:
                    mlf_reused[manager] = Case(f"(d) mlflow run -e noop --env-manager {manager}")
        cases: list[tuple[Case, list[str], dict[str, str], int]] = [
            (reused["local"], run_local, mlp_env(reuse_cache), args.reuse_runs),
            (reused["mlproject"], run_mlp, mlp_env(reuse_cache), args.reuse_runs)]
        for name, case in mlf_reused.items():
            case_env = mlflow_env if name == "local" else mlf_env(base / f"mlflow-reuse-{name}", name)
            cases.append((case, run_mlf(name), case_env, args.mlflow_reuse_runs))
        progress("reused environments: one untimed run each")
        for _case, command, case_env, _ in cases:
            run_timed([command], project, case_env)
        for i in range(max(args.reuse_runs, args.mlflow_reuse_runs)):
            if i % 5 == 0:
                progress(f"reused environments: round {i + 1} of {args.reuse_runs}")
            for case, command, case_env, count in cases:
                if i < count:
                    measure(case, [command], project, case_env)

        # -- 4. what the environments give a step: the first import of the stack
        imports: dict[str, Case] = {}
        prefixes: dict[str, Path] = {}
        prefix = check([*mlproject, "env", "path", "noop", str(project)], project,
                       mlp_env(reuse_cache), "mlproject env path").strip().splitlines()[-1]
        prefixes["mlproject"] = Path(prefix)
        for manager in managers:
            built = sorted((base / f"mlflow-reuse-{manager}").glob("mlflow-*"))
            if built:
                prefixes[manager] = built[0]
        versions = {}
        for name, path in prefixes.items():
            imports[name] = Case(name)
            versions[name] = check([str(path / "bin" / "python"), "-c",
                                    f"{IMPORTS}; print(numpy.__version__, pandas.__version__, "
                                    "sklearn.__version__)"], project, env, f"{name}'s environment").strip()
        progress("first import of numpy, pandas, sklearn in each environment")
        for _ in range(args.first_runs):
            for name, path in prefixes.items():
                measure(imports[name], [[str(path / "bin" / "python"), "-c", IMPORTS]], project, env)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"kept {base}", file=sys.stderr)

    # -- the report
    wall = time.monotonic() - started
    print()
    print(f"mlproject environments benchmark, {datetime.date.today().isoformat()}: "
          f"Python {platform.python_version()} on {platform.system()} {platform.machine()}, "
          f"{os.cpu_count()} CPUs; {version_of([uv], env)}; mlflow: {mlflow_note}")
    print(f"  environment: {', '.join(PACKAGES)} -> {len(pins)} packages pinned with hashes "
          f"(numpy {pins.get('numpy')}, pandas {pins.get('pandas')}, "
          f"scikit-learn {pins.get('scikit-learn')}, pip {pins.get('pip')})")
    if len(set(versions.values())) > 1:
        print(f"  WARNING: the environments differ: {versions}")
    print(f"  PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '(unset)')}")

    print(f"\nFirst build, empty environment store, warm package caches "
          f"(median of {args.first_runs}, interleaved)")
    mine = first["mlproject"].median
    row(first["mlproject"].label, fmt_s(first["mlproject"]), runs(first["mlproject"]))
    for manager in ("virtualenv", "uv"):
        if manager not in first:
            if mlflow and manager in cold:
                row(f"mlflow run -e noop --env-manager {manager}", "  FAILED  ")
            continue
        case = first[manager]
        rest = runs(case)
        if case.median is not None and mine:
            ratio = case.median / mine
            rest = f"{ratio:5.1f}x mlproject's time"
            if manager == "virtualenv":
                rest += (f"   target >= {TARGET_FIRST_RATIO:.0f}x   "
                         f"{'PASS' if ratio >= TARGET_FIRST_RATIO else 'MISS'}")
        row(case.label, fmt_s(case), rest)
    if not mlflow:
        row("mlflow run --env-manager virtualenv / uv", "  skipped ", mlflow_note)
    for case in bare.values():  # what mlproject runs, without mlproject: where the time goes
        row(case.label, fmt_s(case), runs(case))

    print("\nFirst build, empty package caches (the first run of each; one run)")
    for name, case in cold.items():
        label = case.label if name == "mlproject" else f"mlflow run -e noop --env-manager {name}"
        row(label, fmt_s(case))

    counts = f"{args.reuse_runs} mlproject" + (f" and {args.mlflow_reuse_runs} mlflow" if mlflow else "")
    print(f"\nReused environment (medians of {counts} runs, interleaved)")
    row(reused["local"].label, fmt_ms(reused["local"]), runs(reused["local"]))
    row(reused["mlproject"].label, fmt_ms(reused["mlproject"]), runs(reused["mlproject"]))
    if reused["local"].median is not None and reused["mlproject"].median is not None:
        overhead = (reused["mlproject"].median - reused["local"].median) * 1000
        row("    overhead of the reused environment (b - a)", f"{overhead:8.1f} ms",
            f"target <= {TARGET_REUSE_MS:.0f} ms   "
            f"{'PASS' if overhead <= TARGET_REUSE_MS else 'MISS'}")
    else:
        row("    overhead of the reused environment (b - a)", "  FAILED  ",
            f"target <= {TARGET_REUSE_MS:.0f} ms   MISS")
    mlf_local = mlf_reused.get("local")
    for name, case in mlf_reused.items():
        rest = runs(case)
        if name != "local" and case.median is not None and mlf_local and mlf_local.median is not None:
            rest = f"{(case.median - mlf_local.median) * 1000:+.0f} ms over (c)"
        row(case.label, fmt_ms(case), rest)

    print(f"\nFirst `{IMPORTS}` in the built environment (median of {args.first_runs})")
    how = {"mlproject": "mlproject (uv, bytecode linked from its cache)",
           "virtualenv": "mlflow virtualenv (pip)",
           "uv": "mlflow uv (uv pip install, no bytecode)"}
    for name, case in imports.items():
        row(how[name], fmt_s(case), runs(case))

    failures = [(c.label, f) for group in (cold, first, reused, mlf_reused, imports)
                for c in group.values() for f in c.failures]
    if failures:
        print("\nFailures:")
        for label, message in failures:
            print(f"  {label}:\n    {message}")
    print(f"\n  ({wall:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
