"""`mlproject registry --json` on a repository with 10,000 registry tags, and `gto show --json`
beside it (GTO opens every tag through dulwich: iterative/gto#156).

    python benchmarks/bench_registry.py [--tags 10000] [--runs 5] [--gto-runs 1]

The repository is written with one `git fast-import`: 100 models, each with versions on commits
of their own and stage tags that move between them (about 60 % version tags, 40 % stage tags).
mlproject's figure is the median of --runs real processes after one untimed run, with the tags
as loose refs (made here one by one) and packed (a clone; `git gc`); gto's is run --gto-runs
times on the packed repository (it takes many seconds). Both outputs are compared (models, latest versions,
stages), so the figure is for the same answer.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 1.0
MODELS = 100
T0 = 1767225600


def stream(total: int) -> bytes:
    per_model = max(2, total // MODELS)
    versions = per_model * 3 // 5
    stages = per_model - versions
    out: list[str] = []
    for i in range(1, versions + 1):  # one commit per version number: a commit holds one version
        out += [f"commit refs/heads/main\nmark :{i}\ncommitter T <t@example.com> {T0 + i} +0000\n"
                f"data 3\nc{i % 10}\n" + (f"from :{i - 1}\n" if i > 1 else "") +
                f"M 644 inline file.txt\ndata {len(str(i))}\n{i}\n"]
    when = T0 + versions + 10
    names = ("dev", "staging", "prod")
    for m in range(MODELS):
        model = f"model{m:03d}"
        for v in range(1, versions + 1):
            when += 1
            out.append(_tag(f"{model}@v1.{v}.0", v, when))
        for s in range(1, stages + 1):
            when += 1
            out.append(_tag(f"{model}#{names[s % 3]}#{s}", (s * 7) % versions + 1, when))
    return "".join(out).encode()


def _tag(name: str, mark: int, when: int) -> str:
    message = f"promoted {name}\n"
    return (f"tag {name}\nfrom :{mark}\ntagger T <t@example.com> {when} +0000\n"
            f"data {len(message)}\n{message}")


def build(root: Path, total: int) -> int:
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    subprocess.run(["git", "fast-import", "--quiet"], cwd=root, input=stream(total), check=True)
    subprocess.run(["git", "checkout", "-q", "main"], cwd=root, check=True)
    count = subprocess.run(["git", "tag", "-l"], cwd=root, check=True, capture_output=True,
                           text=True).stdout.count("\n")
    return count


def timed(args: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True)
    return time.perf_counter() - start, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tags", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--gto-runs", type=int, default=1)
    args = parser.parse_args()
    bindir = Path(sys.executable).parent
    mlproject = [str(bindir / "mlproject")] if (bindir / "mlproject").exists() else [
        sys.executable, "-m", "mlproject.runner"]
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp:
        root = Path(tmp) / "repo"
        count = build(root, args.tags)
        print(f"repository: {count} tags, {MODELS} models")
        command = [*mlproject, "registry", "--json"]
        worst = 0.0
        # tags made here one by one are loose refs (a file each); a clone, or `git gc`, packs them
        for how in ("loose refs", "packed refs"):
            if how == "packed refs":
                subprocess.run(["git", "pack-refs", "--all"], cwd=root, check=True)
            timed(command, root)  # warm the page cache and the interpreter's files
            runs = [timed(command, root) for _ in range(args.runs)]
            ours = json.loads(runs[0][1])
            median = statistics.median(t for t, _ in runs)
            worst = max(worst, median)
            print(f"mlproject registry --json ({how}): median {median * 1000:.0f} ms of "
                  f"{args.runs} (min {min(t for t, _ in runs) * 1000:.0f} ms)   target < "
                  f"{TARGET_S:.0f} s {'PASS' if median < TARGET_S else 'MISS'}")
        gto = bindir / "gto"
        if gto.exists() and args.gto_runs > 0:
            gruns = [timed([str(gto), "show", "--json", "-d"], root) for _ in range(args.gto_runs)]
            theirs = json.loads(gruns[0][1])
            print(f"gto show --json -d (packed refs): {', '.join(f'{t:.1f} s' for t, _ in gruns)} "
                  f"({statistics.median(t for t, _ in gruns) / median:.0f}x mlproject's)")
            same = {n: (m["version"], {s: v for s, v in m["stage"].items() if v}, not m["active"])
                    for n, m in theirs.items()} == {
                n: (m["latest"], m["stages"], m["deprecated"]) for n, m in ours["models"].items()}
            print(f"same models, latest versions and stages as gto: {'yes' if same else 'NO'}")
            if not same:
                return 1
        else:
            print("gto show: not installed here (pip install gto)")
    return 0 if worst < TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
