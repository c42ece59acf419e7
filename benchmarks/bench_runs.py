"""`mlproject runs` over many records: the whole command's wall time with the runs' index
written (warm), right after every record changed (cold: each one read again), and with a
filter and a sort; beside it, in this process, reading every record as `runs` did before the
index (`records.loaded_runs`) against reading the index (`index.rows`).

    python benchmarks/bench_runs.py [--records 10000] [--repeat 5]

The records are copies of one real run's record (a real `mlproject run` of a step that logs
two metrics), each with its own id and parameters. Figures are medians.
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

TARGET_S = 0.5  # `mlproject runs` over 10,000 records

SPEC = """\
name: bench-runs
entry_points:
  main:
    parameters: {alpha: {type: float, default: 0.5}}
    command: "python -c \\"from mlproject import log; log.metric('acc', 0.9, step=1); \\
log.metric('loss', {alpha})\\""
"""


def _records(project: Path, count: int) -> None:
    subprocess.run([*mlproject_command(), "run", ".", "--env", "local"], cwd=project,
                   check=True, capture_output=True)
    runs = project / ".mlproject" / "runs"
    [first] = list(runs.iterdir())
    record = json.loads((first / "run.json").read_text())
    for i in range(count - 1):
        run_id = f"20260101-{i // 1000000:06d}-{i % 1000000:06d}-{i % 65536:06x}"
        record.update(id=run_id, parameters={"alpha": str(i / count)},
                      metrics={"acc": (i % 97) / 97, "loss": i / count})
        (runs / run_id).mkdir()
        (runs / run_id / "run.json").write_text(json.dumps(record, separators=(",", ":")))


def _timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    try:
        project = make_project(base, SPEC, ".mlproject/\n")
        _records(project, args.records)
        runs = [*mlproject_command(), "runs"]
        index_file = project / ".mlproject" / "runs-index.json"
        cold, warm, query = [], [], []
        for _ in range(args.repeat):
            for run_json in (project / ".mlproject" / "runs").glob("*/run.json"):
                os.utime(run_json)  # every stamp changes: each record is read again
            cold.append(_timed(runs, project))
            warm.append(_timed(runs, project))
            query.append(_timed([*runs, "--filter", "alpha>0.5,status=succeeded",
                                 "--sort=-acc", "--limit", "20"], project))
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from mlproject.runner.state import index, records

        full, indexed = [], []
        for _ in range(args.repeat):
            start = time.perf_counter()
            loaded = records.loaded_runs(str(project))
            full.append(time.perf_counter() - start)
            start = time.perf_counter()
            rows = index.rows(str(project))
            indexed.append(time.perf_counter() - start)
        assert len(loaded) == len(rows) == args.records
        med = statistics.median
        print(f"{args.records} records, medians of {args.repeat} (index "
              f"{index_file.stat().st_size / 1e6:.1f} MB):")
        print(f"  mlproject runs, index current       {med(warm):6.3f} s  (target < {TARGET_S} s:"
              f" {'met' if med(warm) < TARGET_S else 'NOT MET'})")
        print(f"  mlproject runs --filter --sort       {med(query):6.3f} s")
        print(f"  mlproject runs, every record changed {med(cold):6.3f} s  (the index made again)")
        print(f"  in-process: every record read        {med(full):6.3f} s  (as before the index)")
        print(f"  in-process: the index read           {med(indexed):6.3f} s  "
              f"({med(full) / med(indexed):.0f} times faster)")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
