"""The kubernetes backend: a step is a batch/v1 Job whose pod runs mlproject's worker.

`prepare` plans the Job (manifest.py, pure: `plan --backend kubernetes` prints it); `submit`
archives the recorded code (codeship) into a ConfigMap, puts the worker request into a Secret,
creates the Job and makes both owned by it; while it runs, the Job and its pod are watched
(watch.py) and the pod's log followed, so `status` and `logs` ask the API nothing. `wait` is the
generic poll (Ctrl-C, `mlproject cancel`, --queue-timeout), then the engine's facts (the Job, the
pod, the node, how the container ended) go into the record, the worker's report and the step's
outputs are taken from the end of the log, and the Job is deleted (ttlSecondsAfterFinished
removes those of a supervisor that died).
"""
from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from mlproject.runner.backends.base import (
    Capabilities,
    Handle,
    Outcome,
    Patience,
    RunContext,
    StepState,
    Stopper,
    Submission,
    SubmitError,
)
from mlproject.runner.backends.kubernetes import manifest
from mlproject.runner.backends.kubernetes.client import Client, KubeError
from mlproject.runner.backends.kubernetes.state import condition, container, latest, state_of
from mlproject.runner.backends.settings import Setting, with_defaults
from mlproject.runner.plan import Step
from mlproject.runner.state.status import Status
from mlproject.runner.util import console
from mlproject.runner.util.exitcodes import USAGE as EXIT_USAGE
from mlproject.runner.util.files import read_from

EXIT_NOT_STARTED = 127
FOLLOW_DRAIN = 2.0  # seconds to wait for the end of a log stream once the container ended
SETTLE = 10.0  # seconds the Job controller may take to mark a Job whose pod ended
UNANSWERED = 60.0  # seconds the API may fail to answer before a running step counts as lost
PULL_PATIENCE = 120.0  # seconds an image pull may fail (retried by the kubelet) before the step does

SETTINGS: dict[str, Setting] = {
    "kubeconfig": Setting(str, None, "the kubeconfig file; default: KUBECONFIG, else "
                          "~/.kube/config, else the in-cluster configuration"),
    "context": Setting(str, None, "the kubeconfig's context to use (default: its current one)"),
    "namespace": Setting(str, None, "where the Jobs are created (default: the context's "
                         "namespace, else default)"),
    "service_account": Setting(str, None, "the pods' serviceAccountName (default: none, and no "
                               "API token in the pod)"),
    "image": Setting(str, "python:{python}-slim", "the image of a step whose environment is "
                     "python, conda or none ({python}: its X.Y); the worker builds the "
                     "environment inside it"),
    "python": Setting(str, "python3", "the image's interpreter that runs mlproject's worker"),
    "pull": Setting(str, "missing", "imagePullPolicy where the environment does not say "
                    "`pull:`: never (Never), missing (IfNotPresent), always (Always)"),
    "mount_mlproject": Setting(bool, False, "mount this machine's mlproject and its packages "
                               "into the pod (hostPath, read-only) instead of an image that has "
                               "it: only for a cluster whose node is this machine"),
    "host_network": Setting(bool, False, "run the pods with hostNetwork"),
    "cache_host_path": Setting(str, None, "a directory on the node where the worker keeps the "
                               "environments it builds (hostPath); default: an emptyDir, built "
                               "anew in every pod"),
    "node_selector": Setting(list, [], "the pods' nodeSelector, as KEY=VALUE strings"),
    "deadline_margin": Setting(float, 300.0, "seconds added to resources.timeout for the Job's "
                               "activeDeadlineSeconds (the worker's setup: unpacking, building "
                               "the environment)"),
    "ttl": Setting(int, 3600, "the Jobs' ttlSecondsAfterFinished (mlproject deletes each once it "
                   "has read it; the TTL removes those it could not)"),
    "stop_grace": Setting(float, 10.0, "the pods' terminationGracePeriodSeconds: between SIGTERM "
                          "and SIGKILL when a step is cancelled"),
    "keep_job": Setting(bool, False, "leave the Job after the step (its TTL still applies): to "
                        "look at it with kubectl"),
}


@dataclass
class _Prepared:
    plan: manifest.JobPlan
    step: Step
    ctx: RunContext
    problem: str | None = None


@dataclass
class _Live:
    """A Job this process submitted."""
    client: Client
    job: Any  # watch.Watched
    pods: Any  # watch.Watched
    deadline: int | None
    follower: Any = None  # watch.LogFollower, once the pod runs
    cancelled: bool = False
    final: tuple[dict[str, Any] | None, list[dict[str, Any]]] | None = None
    patience: Patience = field(default_factory=lambda: Patience(UNANSWERED))
    waiting_since: dict[str, float] = field(default_factory=dict)

    def stop(self) -> None:
        self.job.stop()
        self.pods.stop()


class KubernetesBackend:
    name = "kubernetes"
    capabilities = Capabilities(shares_filesystem=False, builds_environments=True,
                                runs_containers=True, detaches=True, chains_steps=False,
                                writes_log=False, poll_interval=0.05)
    SETTINGS: ClassVar[dict[str, Setting]] = SETTINGS

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        self.settings: dict[str, Any] = with_defaults(SETTINGS, settings)
        self._client: Client | None = None
        self._prepared: dict[str, _Prepared] = {}
        self._live: dict[str, _Live] = {}
        self._cluster: list[str] | None = None  # what preflight learnt of the cluster
        self._nodes: list[dict[str, Any]] | None = None
        self._code_size: dict[str, int | str] = {}

    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.settings)
        return self._client

    # -- before anything runs

    def preflight(self, step: Step, root: str | None = None) -> list[str]:
        """Why the step cannot start: a Job it cannot be, a cluster that cannot be reached or
        refuses the credentials, a namespace that does not exist, a request no node can ever
        meet, code too big for a ConfigMap."""
        found = manifest.problems(step, self.settings)
        unreachable = self._unreachable()
        if unreachable:
            return found + unreachable
        found += self._beyond_nodes(step)
        if root is not None:
            found += self._code_too_big(step, root)
        return found

    def _unreachable(self) -> list[str]:
        if self._cluster is not None:
            return self._cluster
        said: list[str] = []
        try:
            client = self.client()
        except KubeError as exc:
            self._cluster = [f"the kubernetes backend has no cluster to talk to: {exc}; set the "
                             "backend's `kubeconfig` (or KUBECONFIG) and `context`"]
            return self._cluster
        from kubernetes import client as kube  # type: ignore[import-untyped,unused-ignore]

        try:
            client.call(kube.VersionApi(client.api).get_code, _request_timeout=(5.0, 10.0))
            namespace = client.get(client.core.read_namespace, client.namespace)
            if namespace is None:
                said.append(f"namespace {client.namespace!r} does not exist in the cluster at "
                            f"{client.server}: `kubectl create namespace {client.namespace}`, or "
                            "set the kubernetes backend's `namespace`")
        except KubeError as exc:
            if exc.status in (401,):
                said.append(f"the Kubernetes API at {client.server} refused the credentials of "
                            f"{client.where}: {exc}; renew them (your cluster's login), or set "
                            "`kubeconfig`/`context`")
            elif exc.status == 403:
                pass  # may not read namespaces: the Job's creation says what it may not do
            else:
                said.append(f"the Kubernetes API at {client.server} ({client.where}) cannot be "
                            f"reached: {exc}; check that the cluster runs and the kubeconfig's "
                            "server, or set `kubeconfig`/`context`")
        self._cluster = said
        return said

    def _beyond_nodes(self, step: Step) -> list[str]:
        """cpu, memory or GPUs that no schedulable node allocates (the step would pend)."""
        res = step.resources
        if res.cpu is None and res.memory is None and not res.gpu:
            return []
        client = self.client()
        if self._nodes is None:
            try:
                self._nodes = list(client.call(client.core.list_node).get("items") or ())
            except KubeError as exc:
                if exc.status == 403:  # may not list nodes: the scheduler will say
                    self._nodes = []
                    return []
                return [f"the nodes of the cluster at {client.server} cannot be listed: {exc}"]
        nodes = [n for n in self._nodes if not (n.get("spec") or {}).get("unschedulable")]
        if not nodes:
            return []
        said = []
        asks = [("cpu", res.cpu, _cpu, _cpus),
                ("memory", res.memory, _bytes, _memory),
                (manifest.GPU, res.gpu or None, _count, _gpus)]
        for key, wanted, parse, shown in asks:
            if wanted is None:
                continue
            have = [(parse((n.get("status") or {}).get("allocatable", {}).get(key, "0")),
                     str(n["metadata"]["name"])) for n in nodes]
            most, node = max(have)
            if wanted > most:
                where = f"node {node}" if most else "any node"
                said.append(f"entry point {step.entry_point!r} asks for {shown(wanted)}; the "
                            f"cluster at {client.server} can never give it: the most {where} "
                            f"allocates is {shown(most)} (status.allocatable {key})")
        return said

    def _code_too_big(self, step: Step, root: str) -> list[str]:
        size = self._code_size.get(root)
        if size is None:
            from mlproject.runner.worker.codeship import CodeShipError, archive

            try:
                size = self._code_size[root] = len(archive(root, allow_dirty=False))
            except CodeShipError as exc:
                size = self._code_size[root] = str(exc)
        if isinstance(size, str):
            return [size]
        return [_too_big(size)] if size > manifest.MAX_CODE else []

    def prepare(self, step: Step, ctx: RunContext) -> Submission:
        from mlproject.runner import worker

        mounts = None
        if self.settings["mount_mlproject"]:
            from mlproject.runner.backends.kubernetes import hostmount

            mounts = hostmount.for_pod()
        problem = None
        try:
            plan = manifest.plan(step, ctx, self.settings, worker.PLACEHOLDER, mounts)
        except manifest.ManifestError as exc:
            problem = str(exc)
            plan = manifest.JobPlan(manifest.job_name(ctx.run_id), "", {}, {}, {}, "?", {}, ())
        self._prepared[ctx.run_id] = _Prepared(plan, step, ctx, problem)
        command = (plan.job.get("spec", {}).get("template", {}).get("spec", {})
                   .get("containers", [{}])[0].get("command")) or worker.argv()
        notes = plan.notes + ((f"cannot start: {problem}",) if problem else ())
        return Submission(self.name, step.entry_point, ctx.run_id, tuple(command), manifest.ROOT,
                          {worker.REQUEST_VAR: worker.request_for(step, ctx, shared=False)},
                          step.resources, plan.enforcement, str(ctx.run_dir / "log.txt"),
                          inherits_env=False, timeout=None,
                          script=manifest.render(plan) if not problem else None, notes=notes)

    # -- running

    def submit(self, submission: Submission) -> Handle:
        from mlproject.runner import worker

        prepared = self._prepared.pop(submission.run_id, None)
        if prepared is None:
            raise SubmitError("the kubernetes backend submits what it prepared itself", EXIT_USAGE)
        if prepared.problem:
            raise SubmitError(prepared.problem, EXIT_USAGE)
        request = submission.env.get(worker.REQUEST_VAR)
        if not request or request == worker.PLACEHOLDER:
            raise SubmitError("the step has no worker request (it was prepared without its "
                              "plan)", EXIT_USAGE)
        code = self._archive(prepared)
        plan = prepared.plan
        try:
            client = self.client()
        except KubeError as exc:
            raise SubmitError(str(exc), EXIT_NOT_STARTED) from None
        secret = {**plan.secret, "stringData": {manifest.REQUEST_KEY: request}}
        config_map = {**plan.code, "binaryData": {
            manifest.CODE_KEY: base64.b64encode(code).decode("ascii")}}
        created: list[tuple[Any, str]] = []
        try:
            client.call(client.core.create_namespaced_secret, plan.namespace, secret)
            created.append((client.core.delete_namespaced_secret, plan.name))
            client.call(client.core.create_namespaced_config_map, plan.namespace, config_map)
            created.append((client.core.delete_namespaced_config_map, plan.name))
            job = client.call(client.batch.create_namespaced_job, plan.namespace, plan.job)
        except KubeError as exc:
            for delete, name in created:
                try:
                    client.call(delete, name, plan.namespace)
                except KubeError:
                    pass
            code_ = EXIT_USAGE if exc.status in (400, 403, 409, 422) else EXIT_NOT_STARTED
            raise SubmitError(f"the Kubernetes API at {client.server} refused Job {plan.name}: "
                              f"{exc}", code_) from None
        uid = str(job["metadata"]["uid"])
        self._own(client, plan, uid)
        deadline = plan.job["spec"].get("activeDeadlineSeconds")
        self._live[submission.run_id] = self._watch(plan.name, plan.namespace, deadline)
        return Handle(self.name, submission.run_id, plan.name, {
            "namespace": plan.namespace, "uid": uid, "server": client.server,
            "deadline": deadline, "log": submission.log,
            "run_dir": os.path.dirname(submission.log)})

    def _archive(self, prepared: _Prepared) -> bytes:
        from mlproject.runner.worker.codeship import CodeShipError, archive_for

        try:
            code = archive_for(prepared.step, prepared.ctx)
        except CodeShipError as exc:
            raise SubmitError(str(exc), EXIT_USAGE) from None
        if len(code) > manifest.MAX_CODE:
            raise SubmitError(_too_big(len(code)), EXIT_USAGE)
        return code

    @staticmethod
    def _own(client: Client, plan: manifest.JobPlan, uid: str) -> None:
        """The Secret and the ConfigMap deleted with the Job (by the garbage collector)."""
        owner = {"metadata": {"ownerReferences": [{
            "apiVersion": "batch/v1", "kind": "Job", "name": plan.name, "uid": uid,
            "blockOwnerDeletion": False}]}}
        for patch in (client.core.patch_namespaced_secret, client.core.patch_namespaced_config_map):
            try:
                client.call(patch, plan.name, plan.namespace, owner)
            except KubeError as exc:
                console.say(f"warning: {plan.name} is not owned by its Job ({exc}): mlproject "
                            "deletes it with the Job")

    def _watch(self, name: str, namespace: str, deadline: int | None) -> _Live:
        from mlproject.runner.backends.kubernetes.watch import Watched

        client = self.client()
        job = Watched(client.copy(), lambda c: c.batch.list_namespaced_job, namespace,
                      field_selector=f"metadata.name={name}")
        pods = Watched(client.copy(), lambda c: c.core.list_namespaced_pod, namespace,
                       label_selector=f"job-name={name}")
        job.start()
        pods.start()
        return _Live(client, job, pods, deadline)

    def status(self, handle: Handle) -> StepState:
        live = self._live.get(handle.run_id)
        if live is None:
            return self._status_asked(handle)
        if live.final is not None:
            return self._state(handle, live, *live.final)
        if not (live.job.seen.is_set() and live.pods.seen.is_set()):
            if live.job.error or live.pods.error:
                return self._unanswered(live, str(live.job.error or live.pods.error))
            return StepState(Status.QUEUED, reason="submitted: waiting for the API server")
        live.patience.answered()
        jobs = live.job.docs()
        job = jobs[0] if jobs else None
        if job is None and handle.id not in live.job.deleted and not live.cancelled:
            # not seen at all: ask once (the watch may have been dropped and be listing again)
            return self._status_asked(handle)
        pods = live.pods.docs()
        state = self._state(handle, live, job, pods)
        if state.status.final:
            live.final = (job, pods)
        return state

    def _state(self, handle: Handle, live: _Live | None, job: dict[str, Any] | None,
               pods: list[dict[str, Any]]) -> StepState:
        pod = latest(pods)
        if live is not None:
            self._follow(handle, live, pod)
        patient = True
        if live is not None and pod is not None:
            waiting = ((container(pod).get("state") or {}).get("waiting") or {}).get("reason")
            if waiting:
                since = live.waiting_since.setdefault(str(waiting), time.monotonic())
                patient = time.monotonic() - since < PULL_PATIENCE
        deadline = handle.data.get("deadline")
        state = state_of(job, pods, deadline if isinstance(deadline, int) else None, patient)
        cancelled = live is not None and live.cancelled
        if cancelled and (job is None or state.status.final or not pods):
            return StepState(Status.CANCELLED, state.exit_code, "cancelled: the Job was deleted",
                             state.signal)
        return state

    @staticmethod
    def _unanswered(live: _Live, error: str) -> StepState:
        return live.patience.unanswered(error, "the Kubernetes API stopped answering")

    def _status_asked(self, handle: Handle) -> StepState:
        """The state asked of the API (a process that did not submit it: `runs`, reconcile)."""
        try:
            job, pods = self._read(handle)
        except KubeError as exc:
            live = self._live.get(handle.run_id)
            if live is not None:
                return self._unanswered(live, str(exc))
            return StepState(Status.CRASHED, reason=str(exc))
        foreign = _foreign(job, handle)
        if foreign:
            return StepState(Status.CRASHED, reason=foreign)
        return self._state(handle, self._live.get(handle.run_id), job, pods)

    def _read(self, handle: Handle) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        client = self.client()
        namespace = str(handle.data.get("namespace") or client.namespace)
        job = client.get(client.batch.read_namespaced_job, handle.id, namespace)
        pods = client.call(client.core.list_namespaced_pod, namespace,
                           label_selector=f"job-name={handle.id}").get("items") or []
        return job, list(pods)

    def _follow(self, handle: Handle, live: _Live, pod: Mapping[str, Any] | None) -> None:
        """Start following the pod's log once its container has started."""
        if pod is None or (live.follower is not None and not live.follower.ended.is_set()):
            return
        state = container(pod).get("state") or {}
        if not (state.get("running") or state.get("terminated")):
            return
        name = str(pod["metadata"]["name"])
        if live.follower is not None and live.follower.pod == name:
            return  # followed to its end already (a fresh pod would be a new one)
        from mlproject.runner.backends.kubernetes.watch import LogFollower

        live.follower = LogFollower(live.client.copy(), name,
                                    str(handle.data.get("namespace") or "default"))
        live.follower.start()

    def logs(self, handle: Handle, since: int = 0, follow: bool = False) -> Iterator[bytes]:
        from mlproject.runner import worker

        live = self._live.get(handle.run_id)
        if live is not None and not follow:
            if live.follower is None:
                return
            if live.final is not None:  # ended: the stream's last bytes are on their way
                live.follower.ended.wait(FOLLOW_DRAIN)
            shown = worker.shown(live.follower.read())
            if len(shown) > since:
                yield shown[since:]
            return
        yield from self._logs_asked(handle, since, follow)

    def _logs_asked(self, handle: Handle, since: int, follow: bool) -> Iterator[bytes]:
        """The pod's log from the API (another process), else what the run kept of it."""
        from mlproject.runner import worker

        try:
            job, pods = self._read(handle)
            pod = latest(pods)
            if pod is None or _foreign(job, handle):
                raise KubeError("no pod")
            client = self.client()
            answer = client.raw(client.core.read_namespaced_pod_log, pod["metadata"]["name"],
                                str(handle.data.get("namespace") or client.namespace),
                                container=manifest.CONTAINER, follow=follow,
                                _request_timeout=(5.0, None))
            raw = bytearray()
            sent = since
            try:
                for chunk in answer.stream(64 * 1024, decode_content=False):
                    raw += chunk
                    shown = worker.shown(bytes(raw))
                    if len(shown) > sent:
                        yield shown[sent:]
                        sent = len(shown)
            finally:
                answer.release_conn()
            return
        except KubeError:
            pass
        data = read_from(str(handle.data.get("log")), since)
        if data:
            yield data

    def cancel(self, handle: Handle, force: bool = False) -> None:
        live = self._live.get(handle.run_id)
        try:
            client = self.client()
            namespace = str(handle.data.get("namespace") or client.namespace)
            if live is None:
                job = client.get(client.batch.read_namespaced_job, handle.id, namespace)
                foreign = _foreign(job, handle)
                if foreign:
                    console.say(f"warning: {foreign}")
                    return
            body: dict[str, Any] = {"propagationPolicy": "Foreground"}
            if force:
                body["gracePeriodSeconds"] = 0
            client.get(client.batch.delete_namespaced_job, handle.id, namespace, body=body)
            if force:  # the pods at once, not after their grace period
                client.call(client.core.delete_collection_namespaced_pod, namespace,
                            label_selector=f"job-name={handle.id}", grace_period_seconds=0)
        except KubeError as exc:
            console.say(f"warning: cannot delete Job {handle.id}: {exc}")
            return
        if live is not None:
            live.cancelled = True

    def wait(self, submission: Submission, handle: Handle, stopper: Stopper) -> Outcome:
        from mlproject.runner import worker
        from mlproject.runner.backends.wait import poll

        outcome = poll(self, submission, handle, stopper)
        live = self._live.pop(handle.run_id, None)
        if live is not None:
            live.stop()
        final = live.final if live is not None else None
        try:
            job, pods = final if final is not None and final[0] is not None else self._read(handle)
            job, pods = self._settled(handle, job, pods)
            facts = self._facts(handle, job, pods)
        except KubeError as exc:
            job, pods, facts = None, [], {"job": handle.id, "error": str(exc)}
        raw = self._raw_log(handle, pods, live)
        if raw is not None:
            self._keep_rest(submission.log, worker.shown(raw))
        if not self.settings["keep_job"] and (job is not None or pods):
            facts["deleted"] = self._delete(handle)
        outcome = replace(outcome, enforced=dict(submission.enforcement), engine=facts)
        return worker.merged(outcome, worker.collect(submission, raw if raw is not None else b""))

    def _settled(self, handle: Handle, job: dict[str, Any] | None, pods: list[dict[str, Any]]
                 ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """The Job once its controller has recorded the end (Complete or Failed): a pod's end is
        seen first, and the Job's condition follows a moment later. Asked again for at most
        SETTLE seconds; the facts say `active` after that."""
        end = time.monotonic() + SETTLE
        while job is not None and not (condition(job, "Complete") or condition(job, "Failed")):
            pod = latest(pods)
            if pod is None or not (container(pod).get("state") or {}).get("terminated") \
                    or time.monotonic() > end:
                break  # a step stopped before its container ended: nothing will settle
            time.sleep(0.1)
            job, pods = self._read(handle)
        return job, pods

    def _raw_log(self, handle: Handle, pods: list[dict[str, Any]], live: _Live | None
                 ) -> bytes | None:
        """The container's whole log once it ended (the bundle at its end), asked once more:
        a followed stream may have been cut."""
        followed = live.follower.read() if live is not None and live.follower else None
        pod = latest(pods)
        if pod is None or not (container(pod).get("state") or {}).get("terminated"):
            return followed
        client = self.client()
        try:
            answer = client.raw(client.core.read_namespaced_pod_log, pod["metadata"]["name"],
                                str(handle.data.get("namespace") or client.namespace),
                                container=manifest.CONTAINER, _request_timeout=(5.0, 120.0))
            data: bytes = answer.data
        except KubeError as exc:
            console.say(f"warning: the log of pod {pod['metadata']['name']} cannot be read: {exc}")
            return followed
        return data if followed is None or len(data) >= len(followed) else followed

    @staticmethod
    def _keep_rest(log: str, shown: bytes) -> None:
        """What the followed stream missed, appended to the run's log.txt."""
        try:
            kept = os.path.getsize(log)
            if len(shown) > kept:
                with open(log, "ab") as out:
                    out.write(shown[kept:])
        except OSError:
            pass

    def _delete(self, handle: Handle) -> bool:
        """The Job, its pods, its ConfigMap and Secret deleted (in the background)."""
        client = self.client()
        namespace = str(handle.data.get("namespace") or client.namespace)
        body = {"propagationPolicy": "Background"}
        try:
            client.get(client.batch.delete_namespaced_job, handle.id, namespace, body=body)
            client.get(client.core.delete_namespaced_config_map, handle.id, namespace)
            client.get(client.core.delete_namespaced_secret, handle.id, namespace)
        except KubeError as exc:
            console.say(f"warning: Job {handle.id} could not be deleted: {exc}")
            return False
        return True

    def cleanup(self, handle: Handle) -> None:
        """Delete the Job of a step whose end another process recorded (reconcile)."""
        if self.settings["keep_job"]:
            return
        try:
            job, _ = self._read(handle)
        except KubeError as exc:
            console.say(f"warning: Job {handle.id} could not be read: {exc}")
            return
        foreign = _foreign(job, handle)
        if foreign:
            console.say(f"warning: {foreign}")
        elif job is not None:
            self._delete(handle)

    def find(self, run_id: str, run_dir: str) -> Handle | None:
        """The Job of a run whose record lacks its handle, found by its label."""
        client = self.client()
        selector = f"{manifest.RUN_LABEL}={manifest.label_value(run_id)}"
        try:
            jobs = client.call(client.batch.list_namespaced_job, client.namespace,
                               label_selector=selector).get("items") or []
        except KubeError:
            return None
        for job in jobs:
            meta = job.get("metadata") or {}
            if (meta.get("annotations") or {}).get("mlproject.run-id") == run_id:
                return Handle(self.name, run_id, str(meta["name"]), {
                    "namespace": client.namespace, "uid": meta.get("uid"),
                    "server": client.server,
                    "deadline": (job.get("spec") or {}).get("activeDeadlineSeconds"),
                    "log": os.path.join(run_dir, "log.txt"), "run_dir": run_dir})
        return None

    def worker_log(self, handle: Handle) -> bytes:
        """The container's whole log, the worker's bundle at its end (for reconcile, before
        `cleanup` deletes the Job)."""
        _, pods = self._read(handle)
        return self._raw_log(handle, pods, None) or b""

    def engine_facts(self, handle: Handle) -> dict[str, Any]:
        try:
            job, pods = self._read(handle)
        except KubeError as exc:
            return {"job": handle.id, "error": str(exc)}
        return self._facts(handle, job, pods)

    def _facts(self, handle: Handle, job: dict[str, Any] | None,
               pods: list[dict[str, Any]]) -> dict[str, Any]:
        """What the engine says of the Job that ran: for the record."""
        facts: dict[str, Any] = {"server": handle.data.get("server"), "job": handle.id,
                                 "namespace": handle.data.get("namespace"),
                                 "uid": handle.data.get("uid")}
        if job is None:
            facts["gone"] = True
        else:
            ended = condition(job, "Complete") or condition(job, "Failed")
            facts["state"] = (str(ended.get("type")) + (f" ({ended['reason']})"
                              if ended.get("reason") else "")) if ended else "active"
            status = job.get("status") or {}
            facts["started_at"] = status.get("startTime")
            facts["completed_at"] = status.get("completionTime")
            facts["deadline"] = (job.get("spec") or {}).get("activeDeadlineSeconds")
        pod = latest(pods)
        if pod is not None:
            step = container(pod)
            terminated = (step.get("state") or {}).get("terminated") or {}
            spec: dict[str, Any] = next((c for c in (pod.get("spec") or {}).get("containers") or ()
                         if c.get("name") == manifest.CONTAINER), {})
            facts.update({
                "pod": pod["metadata"]["name"], "node": (pod.get("spec") or {}).get("nodeName"),
                "image": spec.get("image"), "image_id": step.get("imageID") or None,
                "container_id": step.get("containerID") or None,
                "exit_code": terminated.get("exitCode"), "reason": terminated.get("reason"),
                "message": terminated.get("message"), "finished_at": terminated.get("finishedAt"),
                "oom_killed": terminated.get("reason") == "OOMKilled",
                "resources": spec.get("resources") or {}})
        return facts


def _foreign(job: Mapping[str, Any] | None, handle: Handle) -> str | None:
    """Why the Job a handle names is not that run's (a record copied from elsewhere): it is
    never stopped or deleted."""
    if job is None:
        return None
    annotations = (job.get("metadata") or {}).get("annotations") or {}
    if annotations.get("mlproject.run-id") == handle.run_id:
        return None
    return (f"Job {handle.id} is not run {handle.run_id}'s (its mlproject.run-id annotation says "
            "otherwise): left alone")


def _too_big(size: int) -> str:
    from mlproject.spec.units import format_bytes

    return (f"the project's code archive is {format_bytes(size)}; the kubernetes backend ships "
            f"it in a ConfigMap, which holds at most {format_bytes(manifest.MAX_CODE)}: keep data "
            "and large files out of Git (DVC pins them, and the worker fetches them), or add "
            "them to .gitignore")


_SUFFIXES = {"Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3, "Ti": 1024 ** 4, "Pi": 1024 ** 5,
             "Ei": 1024 ** 6, "k": 1000, "K": 1000, "M": 1000 ** 2, "G": 1000 ** 3,
             "T": 1000 ** 4, "P": 1000 ** 5, "E": 1000 ** 6, "m": 0.001}


def _quantity(text: Any) -> float:
    """A Kubernetes quantity ("1500m", "24682560Ki", "2") as a number; 0 where it is none."""
    value = str(text or "0").strip()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if value.endswith(suffix):
            try:
                return float(value[:-len(suffix)]) * _SUFFIXES[suffix]
            except ValueError:
                return 0.0
    try:
        return float(value)
    except ValueError:
        return 0.0


_cpu = _bytes = _count = _quantity


def _cpus(value: float) -> str:
    return f"{value:g} CPUs"


def _gpus(value: float) -> str:
    return f"{value:g} GPUs"


def _memory(value: float) -> str:
    from mlproject.spec.units import format_bytes

    return format_bytes(int(value))
