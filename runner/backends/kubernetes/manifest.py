"""The batch/v1 Job of a step, from the plan alone: pure (no cluster is asked), so that `plan
--backend kubernetes` prints what `run --backend kubernetes` creates. Two values are made only at
submit and shown as placeholders: the worker request (kept in a Secret, never in the Job: the
request may carry a secret) and the code archive (a ConfigMap's binaryData).

The pod runs mlproject's worker (`python3 -m mlproject.runner.worker`), which unpacks the code
into an emptyDir, builds the environment there, runs the command under the local guard and
prints its report and the outputs at the end of its log. The Job: backoffLimit 0 (a step runs
once), restartPolicy Never, activeDeadlineSeconds from the timeout plus a margin for the worker's
setup (the worker itself enforces the timeout to the second), ttlSecondsAfterFinished (mlproject
deletes it once read; the TTL is for the Jobs of a supervisor that died).
"""
from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlproject.runner.backends.base import RunContext
from mlproject.runner.plan import Step
from mlproject.spec.units import format_bytes

CONTAINER = "step"
ROOT = "/mlproject/project"  # the checkout in the pod (emptyDir), the worker's --root
CODE_DIR = "/mlproject/code"
CODE_KEY = "code.tar.gz"
CACHE = "/mlproject/cache"  # the worker's MLPROJECT_CACHE_DIR: environments built there
REQUEST_KEY = "request"
RUN_LABEL = "mlproject.run-id"
ENTRY_LABEL = "mlproject.entry-point"
GPU = "nvidia.com/gpu"
# a ConfigMap holds at most 1 MiB (the API server refuses more); some is the object's own
MAX_CODE = 1024 * 1024 - 16 * 1024
PULLS = {"never": "Never", "missing": "IfNotPresent", "always": "Always"}
CODE_PLACEHOLDER = "<the code archive (tar.gz): made at submit>"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9._-]+")


class ManifestError(ValueError):
    """The step cannot be a Job as declared (preflight says so first)."""


@dataclass(frozen=True)
class JobPlan:
    """What `submit` creates, in order: the Secret (the request), the ConfigMap (the code), the
    Job; the first two are owned by the Job once it exists (deleted with it)."""
    name: str  # of all three
    namespace: str
    job: dict[str, Any]
    code: dict[str, Any]  # the ConfigMap; binaryData filled at submit
    secret: dict[str, Any]  # the Secret; stringData filled at submit
    image: str
    enforcement: dict[str, str]
    notes: tuple[str, ...]


def job_name(run_id: str) -> str:
    """A DNS-1123 label (Job names end up as a pod label: at most 63 characters)."""
    name = re.sub(r"[^a-z0-9-]+", "-", f"mlproject-{run_id}".lower()).strip("-")
    return name[:63].rstrip("-")


def label_value(text: str) -> str:
    """`text` as a label value (63 characters of [A-Za-z0-9._-], alphanumeric at both ends)."""
    value = _LABEL_VALUE.sub("-", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)


def cpu_quantity(cpu: float) -> str:
    """1.5 -> "1500m"; whole CPUs as they are ("2")."""
    milli = math.ceil(cpu * 1000 - 1e-9)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def problems(step: Step, settings: Mapping[str, Any]) -> list[str]:
    """Why the step cannot be planned into a Job, each said once."""
    try:
        plan(step, RunContext.for_plan("/"), settings, "")
    except ManifestError as exc:
        return [f"entry point {step.entry_point!r}: {line}" for line in str(exc).splitlines()]
    return []


def image_of(step: Step, settings: Mapping[str, Any]) -> tuple[str, str | None]:
    """The pod's image, and why the step cannot have one."""
    env = step.environment
    if env.kind == "docker":
        options = env.data.get("options") or {}
        if options.get("build") is not None:
            return "?", (f"environment {env.name!r} is built from a Dockerfile: a cluster pulls "
                         "images from a registry; build and push it, then name it in `image:`")
        return str(env.data.get("image") or env.detail), None
    version = str(env.data.get("version") or "") if env.kind == "python" else ""
    python = ".".join(version.split(".")[:2]) or "{}.{}".format(*sys.version_info[:2])
    return str(settings.get("image") or "python:{python}-slim").replace("{python}", python), None


def plan(step: Step, ctx: RunContext, settings: Mapping[str, Any], request_name: str,
         mounts: Any = None) -> JobPlan:
    """The step's Job; ManifestError when it cannot be one. `mounts`: hostmount.HostMounts
    when mlproject is mounted from this machine (else the image has it)."""
    from mlproject.runner.worker import REQUEST_VAR, argv

    said: list[str] = []
    name = job_name(ctx.run_id)
    namespace = str(settings.get("namespace") or "default")
    if not _NAME.match(namespace) or len(namespace) > 63:
        said.append(f"namespace {namespace!r} is not a Kubernetes namespace name (lower-case "
                    "letters, digits and '-', at most 63)")
    image, problem = image_of(step, settings)
    if problem:
        said.append(problem)
    env_options = step.environment.data.get("options") or {} \
        if step.environment.kind == "docker" else {}
    pull = str(env_options.get("pull") or settings.get("pull") or "missing")
    if pull not in PULLS:
        said.append(f"pull {pull!r} is not one of {', '.join(PULLS)}")
    resources, enforcement = _resources(step, settings)
    selector = _node_selector(settings.get("node_selector") or (), said)
    if said:
        raise ManifestError("\n".join(dict.fromkeys(said)))

    labels = {RUN_LABEL: label_value(ctx.run_id), ENTRY_LABEL: label_value(step.entry_point)}
    annotations = {"mlproject.run-id": ctx.run_id, "mlproject.entry-point": step.entry_point,
                   "mlproject.project": ctx.cwd}
    env: list[dict[str, Any]] = [
        {"name": REQUEST_VAR, "valueFrom": {"secretKeyRef": {"name": name, "key": REQUEST_KEY}}},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "MLPROJECT_CACHE_DIR", "value": CACHE},
    ]
    if step.resources.gpu == 0:  # the NVIDIA runtime shows every GPU to a pod that asks none
        env.append({"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"})
    volumes: list[dict[str, Any]] = [
        {"name": "code", "configMap": {"name": name, "items": [{"key": CODE_KEY,
                                                                 "path": CODE_KEY}]}},
        {"name": "project", "emptyDir": {}},
        _cache_volume(settings)]
    mounted: list[dict[str, Any]] = [
        {"name": "code", "mountPath": CODE_DIR, "readOnly": True},
        {"name": "project", "mountPath": ROOT},
        {"name": "cache", "mountPath": CACHE}]
    notes = [f"the code travels in ConfigMap {name} (the archive of the "
             f"{'working tree (--allow-dirty)' if ctx.allow_dirty else 'recorded commit'}, at "
             f"most {format_bytes(MAX_CODE)}), unpacked by the worker into {ROOT}",
             f"{REQUEST_VAR} comes from Secret {name} (never in the Job's spec)",
             "the outputs come back in the worker's log (a bundle at its end), unpacked into "
             "the project"]
    if mounts is not None:
        from mlproject.runner.backends.kubernetes.hostmount import volumes_of

        more_volumes, more_mounted = volumes_of(mounts)
        volumes += more_volumes
        mounted += more_mounted
        env += [{"name": key, "value": value} for key, value in sorted(mounts.env.items())]
        notes.append(mounts.note)
    else:
        notes.append(f"image {image} must have mlproject installed (the same version as here): "
                     "the pod runs `python3 -m mlproject.runner.worker`")
    if not settings.get("cache_host_path"):
        notes.append("environments are built in the pod each time (an emptyDir): set "
                     "`cache_host_path` to keep them on the node")
    container: dict[str, Any] = {
        "name": CONTAINER, "image": image, "imagePullPolicy": PULLS[pull],
        "command": argv(str(settings.get("python") or "python3"), code=f"{CODE_DIR}/{CODE_KEY}",
                        root=ROOT),
        "workingDir": ROOT, "env": env, "volumeMounts": mounted}
    if resources:
        container["resources"] = resources
    pod: dict[str, Any] = {
        "restartPolicy": "Never", "enableServiceLinks": False,
        "terminationGracePeriodSeconds": math.ceil(float(settings.get("stop_grace") or 0)),
        "containers": [container], "volumes": volumes}
    account = settings.get("service_account")
    if account:
        pod["serviceAccountName"] = str(account)
    else:  # the worker does not talk to the API: no token in the pod
        pod["automountServiceAccountToken"] = False
    if settings.get("host_network"):
        pod["hostNetwork"] = True
    if selector:
        pod["nodeSelector"] = selector
    spec: dict[str, Any] = {"backoffLimit": 0, "template": {
        "metadata": {"labels": dict(labels), "annotations": dict(annotations)}, "spec": pod}}
    timeout = step.resources.timeout
    if timeout is not None:
        margin = float(settings.get("deadline_margin") or 0)
        spec["activeDeadlineSeconds"] = max(1, math.ceil(timeout + margin))
        enforcement["timeout"] = (
            f"{timeout:g}s, by the worker (to the second: SIGTERM, then SIGKILL); the Job's "
            f"activeDeadlineSeconds {spec['activeDeadlineSeconds']} (the timeout plus "
            f"{margin:g}s for the worker's setup) stops a worker that overruns it")
    ttl = settings.get("ttl")
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = int(ttl)
    meta = {"name": name, "namespace": namespace, "labels": labels, "annotations": annotations}
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec}
    code = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": dict(meta),
            "binaryData": {CODE_KEY: CODE_PLACEHOLDER}}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": dict(meta), "type": "Opaque",
              "stringData": {REQUEST_KEY: request_name}}
    return JobPlan(name, namespace, job, code, secret, image, enforcement, tuple(notes))


def _resources(step: Step, settings: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    res = step.resources
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    enforcement: dict[str, str] = {}
    if res.cpu is not None:
        requests["cpu"] = limits["cpu"] = cpu_quantity(res.cpu)
        enforcement["cpu"] = (f"requests and limits cpu {limits['cpu']}: reserved by the "
                              "scheduler, a CFS quota on the node")
    if res.memory is not None:
        requests["memory"] = limits["memory"] = str(res.memory)
        enforcement["memory"] = (f"requests and limits memory {format_bytes(res.memory)}: over "
                                 "it the kernel kills the step (OOMKilled), recorded as oom")
    if res.gpu:
        limits[GPU] = str(res.gpu)
        enforcement["gpu"] = (f"limits {GPU} {res.gpu}: the node's device plugin gives the pod "
                              f"{res.gpu} GPU{'s' if res.gpu > 1 else ''}")
    elif res.gpu == 0:
        enforcement["gpu"] = f"none: no {GPU}, and NVIDIA_VISIBLE_DEVICES=void"
    found: dict[str, Any] = {}
    if requests:
        found["requests"] = requests
    if limits:
        found["limits"] = limits
    return found, enforcement


def _cache_volume(settings: Mapping[str, Any]) -> dict[str, Any]:
    host = settings.get("cache_host_path")
    if host:
        return {"name": "cache", "hostPath": {"path": str(host), "type": "DirectoryOrCreate"}}
    return {"name": "cache", "emptyDir": {}}


def _node_selector(entries: Any, said: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for entry in entries:
        key, sep, value = str(entry).partition("=")
        if not sep or not key:
            said.append(f"node_selector {entry!r} is not KEY=VALUE")
            continue
        found[key] = value
    return found


def render(jobplan: JobPlan) -> str:
    """The three objects as YAML documents, as `kubectl apply -f` would take them."""
    import yaml

    documents = [jobplan.secret, jobplan.code, jobplan.job]
    return yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=False, width=100)
