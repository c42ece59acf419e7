"""What mlproject adds to a step on Kubernetes: the wall time of `mlproject run --backend
kubernetes` of a trivial step against a bare Job of the same command (created with the
`kubernetes` client, watched to Complete), medians, the cases interleaved (bench_run.interleaved).

    python benchmarks/bench_kubernetes.py [--runs 7]

The cluster is the tests' (tests/kubecluster.py: built once, started here on the tests' Docker
engine); mlproject is mounted into the pod from this machine (`mount_mlproject`).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_run import interleaved, make_project, mlproject_command, verdict

TARGET_OVERHEAD_MS = 1000.0
COMMAND = "echo ok"
NOOP = f'name: bench\nentry_points:\n  noop:\n    command: "{COMMAND}"\n'

BARE = """
import sys, time
from kubernetes import client, config, watch
config.load_kube_config(config_file=sys.argv[1])
batch = client.BatchV1Api()
name = "bare-%d" % time.time_ns()
batch.create_namespaced_job("default", {"apiVersion": "batch/v1", "kind": "Job",
    "metadata": {"name": name}, "spec": {"backoffLimit": 0, "template": {"spec": {
    "restartPolicy": "Never", "hostNetwork": True, "automountServiceAccountToken": False,
    "containers": [{"name": "step", "image": sys.argv[2], "imagePullPolicy": "Never",
                    "command": ["/bin/sh", "-c", sys.argv[3]]}]}}}})
stream = watch.Watch()
for event in stream.stream(batch.list_namespaced_job, "default",
                           field_selector="metadata.name=" + name, timeout_seconds=120):
    conditions = (event["raw_object"].get("status") or {}).get("conditions") or []
    if any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conditions):
        stream.stop()
batch.delete_namespaced_job(name, "default", propagation_policy="Background")
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each case (default 7)")
    args = parser.parse_args()
    from tests import dockerengine, kubecluster

    base = Path(tempfile.mkdtemp(prefix="mlproject-bench-k8s-"))
    with dockerengine.running() as engine, kubecluster.running(engine) as cluster:
        project = make_project(base, NOOP, ".mlproject/\n")
        conf = json.dumps({"kubeconfig": str(cluster.kubeconfig), "mount_mlproject": True,
                           "host_network": True, "pull": "never", "image": cluster.image})
        env = {**os.environ, **cluster.environ(), "MLPROJECT_CACHE_DIR": str(base / "cache")}
        cases = {
            "bare Job": [sys.executable, "-c", BARE, str(cluster.kubeconfig), cluster.image,
                         COMMAND],
            "mlproject run": [*mlproject_command(), "run", ".", "-e", "noop", "--backend", "kubernetes",
                              "--backend-config", conf],
        }
        times = interleaved(cases, project, env, args.runs)
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        print(f"{name:>14}: {value:8.1f} ms (median of {args.runs})")
    overhead = medians["mlproject run"] - medians["bare Job"]
    print(f"{'overhead':>14}: {overhead:8.1f} ms (target <= {TARGET_OVERHEAD_MS:g} ms: "
          f"{verdict(overhead, TARGET_OVERHEAD_MS, inclusive=True)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
