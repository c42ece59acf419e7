"""A real single-node Kubernetes 1.20 for the tests: Debian's `kubernetes` source package built
here (kube-apiserver, kube-controller-manager, kube-scheduler, kubelet), Debian's etcd, and the
Docker engine of tests/dockerengine.py as the kubelet's runtime (dockershim). Everything listens
on 127.0.0.1 (ports picked free), every daemon is started by pid in a session of its own
(setsid) and stopped by pid.

The build (~5 minutes on 2 cores, peak ~1.4 GB) is cached under $MLPROJECT_TEST_CACHE (default
~/.cache/mlproject-tests)/kubernetes-1.20/bin: later runs start the cluster in seconds. The
source is fetched with `apt-get source` through a private apt state directory (its own
sources.list of deb-src lines; the system's sources are untouched). Two things the build needs
that are easy to miss: rsync (without it the code generators write nothing and the build
fails far from the cause) and Debian's reflect2 1.0.2 in place of the vendored 1.0.1, with which
the apiserver crashes at random under Go 1.19.

The API server serves plain HTTP on 127.0.0.1 only (--insecure-port, still in 1.20); the
kubeconfig the tests get points there. Pods are meant to use hostNetwork (no CNI here) and
imagePullPolicy Never (no registry is reachable): the test image is already in the engine, and
the pod sandbox image is made from it. TTLAfterFinished (alpha in 1.20) is enabled.

Where it cannot be had (no Go toolchain, no network to Debian, a daemon that does not come up)
the Kubernetes tests are skipped with the reason; with MLPROJECT_REQUIRE_ENGINES=1 (CI) they
fail instead. MLPROJECT_SKIP_KUBERNETES=1 skips them on a developer's machine (never in CI), as
does `-m 'not kubernetes'`.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from tests.dockerengine import Engine, Unavailable, _locked, _run

VERSION = "1.20"
BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet")
# what must be installed to build (Debian package of each tool)
TOOLS = {"go": "golang-go", "rsync": "rsync", "make": "make", "dpkg-source": "dpkg-dev"}
REFLECT2 = "golang-github-modern-go-reflect2-dev"
REFLECT2_DIR = "usr/share/gocode/src/github.com/modern-go/reflect2"
MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
PAUSE = "mlproject-test/pause:1"  # the pod sandbox image, made from the test image
# the sandbox's process: waits, and ends at once on SIGTERM (as the real pause binary does)
_PAUSE_CMD = ('["python3", "-c", "import signal, sys; signal.signal(signal.SIGTERM, '
              'lambda *a: sys.exit(0)); signal.pause()"]')
FEATURES = "TTLAfterFinished=true"
START_TIMEOUT = 120.0  # seconds for the whole cluster to come up (~13 s measured)


def cache_dir() -> Path:
    base = os.environ.get("MLPROJECT_TEST_CACHE") or os.path.expanduser("~/.cache/mlproject-tests")
    path = Path(base) / f"kubernetes-{VERSION}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def skipped_here() -> str | None:
    """Why the Kubernetes tier is skipped on this machine, or None (never where required)."""
    if os.environ.get("MLPROJECT_REQUIRE_ENGINES") == "1":
        return None
    if os.environ.get("MLPROJECT_SKIP_KUBERNETES") == "1":
        return "MLPROJECT_SKIP_KUBERNETES=1"
    return None


def binaries() -> Path:
    """The directory of the four built binaries, built once (the result is cached)."""
    out = cache_dir() / "bin"
    with _locked(cache_dir() / ".build.lock"):
        if all((out / name).is_file() for name in BINARIES):
            return out
        missing = [pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None]
        if missing:
            raise Unavailable(f"building Kubernetes {VERSION} needs `apt-get install "
                              f"{' '.join(missing)}` (Debian's Go toolchain and build tools)")
        if shutil.which("apt-get") is None:
            raise Unavailable("no apt-get to fetch Debian's kubernetes source package")
        work = Path(tempfile.mkdtemp(dir=cache_dir(), prefix="build-"))
        try:
            source = _fetch_source(work)
            _vendor_reflect2(source, work)
            _build(source, work)
            partial = Path(tempfile.mkdtemp(dir=cache_dir(), prefix="bin-"))
            for name in BINARIES:
                shutil.copy2(source / "_output" / "bin" / name, partial / name)
            shutil.rmtree(out, ignore_errors=True)
            os.replace(partial, out)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return out


def _apt(work: Path) -> list[str]:
    """apt-get with a private state, cache and source list: the system's are not touched."""
    apt = work / "apt"
    for sub in ("state/lists/partial", "cache/archives/partial"):
        (apt / sub).mkdir(parents=True, exist_ok=True)
    sources = apt / "sources.list"
    sources.write_text(f"deb-src {_mirror()} {SUITE} main\n")
    return ["apt-get", "-q", "-o", f"Dir::State={apt / 'state'}", "-o", f"Dir::Cache={apt / 'cache'}",
            "-o", f"Dir::Etc::SourceList={sources}", "-o", "Dir::Etc::SourceParts=/nonexistent",
            "-o", "APT::Sandbox::User=root"]


def _mirror() -> str:
    """The Debian mirror the system's own sources use (a proxy or snapshot may stand in)."""
    found: list[str] = []
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        with suppress(OSError):
            for line in path.read_text().splitlines():
                words = line.split()
                if line.startswith("URIs:"):
                    found += words[1:]
                elif words[:1] in (["deb"], ["deb-src"]):
                    found += [w for w in words[1:] if "://" in w][:1]
    debian = [uri for uri in found if uri.rstrip("/").endswith("/debian")]
    return debian[0].rstrip("/") if debian else MIRROR


def _fetch_source(work: Path) -> Path:
    apt = _apt(work)
    _run([*apt, "update"], 600)
    download = work / "download"
    download.mkdir()
    _run([*apt, "source", "--download-only", "kubernetes"], 900, cwd=download)
    dsc = sorted(download.glob("kubernetes_*.dsc"))
    if not dsc:
        raise Unavailable(f"apt-get source kubernetes fetched no .dsc into {download}")
    source = work / "kubernetes"
    _run(["dpkg-source", "--no-check", "-x", str(dsc[-1]), str(source)], 600)
    return source


def _vendor_reflect2(source: Path, work: Path) -> None:
    """Debian's reflect2 1.0.2 over the vendored 1.0.1 (which crashes the apiserver at random
    under Go 1.18+: it reads runtime internals that moved)."""
    installed = Path("/") / REFLECT2_DIR
    if not installed.is_dir():
        debs = work / "reflect2"
        debs.mkdir()
        _run(["apt-get", "download", REFLECT2], 300, cwd=debs)
        for deb in debs.glob("*.deb"):
            _run(["dpkg", "-x", str(deb), str(debs / "root")], 120)
        installed = debs / "root" / REFLECT2_DIR
    vendored = source / "vendor" / "github.com" / "modern-go" / "reflect2"
    shutil.rmtree(vendored)
    vendored.mkdir()
    for file in installed.iterdir():
        if file.suffix in (".go", ".s") and not file.name.endswith("_test.go"):
            shutil.copyfile(file, vendored / file.name)  # through links: Debian's point elsewhere


def _build(source: Path, work: Path) -> None:
    gopath = source / ".go"
    (gopath / "src" / "k8s.io").mkdir(parents=True)
    (gopath / "src" / "k8s.io" / "kubernetes").symlink_to(source)
    env = {**os.environ, "GOPATH": str(gopath), "GOCACHE": str(work / "gocache"), "CGO_ENABLED": "0",
           "HOME": str(work / "home")}
    log = work / "make.log"
    with open(log, "wb") as out:
        try:
            done = subprocess.run(
                ["make", f"WHAT={' '.join('cmd/' + name for name in BINARIES)}"], cwd=source,
                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                timeout=3600)
        except subprocess.TimeoutExpired:
            raise Unavailable("building Kubernetes took over an hour") from None
    if done.returncode != 0:
        raise Unavailable(f"building Kubernetes failed ({done.returncode}): "
                          f"{log.read_text(errors='replace')[-1500:]}")


def etcd() -> str:
    """etcd: installed (etcd-server), else Debian's package unpacked into the cache."""
    found = shutil.which("etcd")
    if found:
        return found
    root = cache_dir() / "etcd"
    binary = root / "usr" / "bin" / "etcd"
    with _locked(cache_dir() / ".etcd.lock"):
        if not binary.exists():
            debs = Path(tempfile.mkdtemp(dir=cache_dir(), prefix="etcd-"))
            try:
                _run(["apt-get", "download", "etcd-server"], 300, cwd=debs)
                partial = debs / "root"
                for deb in debs.glob("*.deb"):
                    _run(["dpkg", "-x", str(deb), str(partial)], 120)
                shutil.rmtree(root, ignore_errors=True)
                os.replace(partial, root)
            finally:
                shutil.rmtree(debs, ignore_errors=True)
    return str(binary)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Cluster:
    """A running cluster: `kubeconfig` is a file for the client (and kubectl), `server` the
    API's address, `node` the one node's name, `image` an image its pods can run (in the
    engine: imagePullPolicy Never), `engine` the Docker engine underneath."""
    kubeconfig: Path
    server: str
    node: str
    image: str
    engine: Engine
    state: Path
    api: _Api

    def get(self, path: str) -> Any:
        """GET an API path as JSON (the tests' own look at the cluster, beside mlproject's)."""
        return self.api.get(path)

    def environ(self) -> dict[str, str]:
        return {**self.engine.environ(), "KUBECONFIG": str(self.kubeconfig)}


class _Api:
    """The tests' own client of the API (urllib, the admin's certificate): to wait for the
    cluster and to look at it beside mlproject, without the client mlproject uses."""

    def __init__(self, server: str, pki: _Pki) -> None:
        self.server = server
        self.context = ssl.create_default_context(cafile=str(pki.ca))
        self.context.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))

    def get(self, path: str, raw: bool = False, timeout: float = 5.0) -> Any:
        with urllib.request.urlopen(self.server + path, timeout=timeout,
                                    context=self.context) as answer:
            data = answer.read()
        return data if raw else json.loads(data)

    def delete(self, path: str, timeout: float = 10.0) -> Any:
        request = urllib.request.Request(self.server + path, method="DELETE")
        with urllib.request.urlopen(request, timeout=timeout,
                                    context=self.context) as answer:
            return json.loads(answer.read())


class _Daemons:
    """The cluster's processes, started in order, each its own session and log file."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.started: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.state / f"{name}.log", "wb")  # noqa: SIM115 (closed in stop)
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        self.started.append((name, process, log))
        return process

    def dead(self) -> str | None:
        for name, process, _ in self.started:
            if process.poll() is not None:
                return f"{name} exited ({process.returncode}): {self.tail(name)}"
        return None

    def tail(self, name: str, size: int = 1500) -> str:
        try:
            return (self.state / f"{name}.log").read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def stop(self) -> None:
        for _, process, _ in reversed(self.started):  # kubelet first, etcd last
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _, process, log in reversed(self.started):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            log.close()


def _until(what: str, check: Any, daemons: _Daemons, deadline: float) -> Any:
    """Wait for `check()` to return something truthy; Unavailable with the logs when a daemon
    dies or the deadline passes."""
    last = ""
    while time.monotonic() < deadline:
        dead = daemons.dead()
        if dead:
            raise Unavailable(f"while waiting for {what}: {dead}")
        try:
            found = check()
            if found:
                return found
        except (OSError, urllib.error.URLError, ValueError, KeyError) as exc:
            last = str(exc)
        time.sleep(0.2)
    logs = "\n".join(f"--- {name}: {daemons.tail(name, 800)}" for name, _, _ in daemons.started)
    raise Unavailable(f"{what} did not happen in {START_TIMEOUT:g}s ({last}):\n{logs}")


@dataclass(frozen=True)
class _Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    admin_cert: Path
    admin_key: Path
    service_accounts: Path  # the key service account tokens are signed with (1.20 needs one)


def _pki(state: Path) -> _Pki:
    """A CA of the test's own, the API server's certificate for 127.0.0.1 and an admin's
    client certificate (system:masters); EC keys: made in milliseconds. 1.20 serves only TLS."""
    pki = state / "pki"
    pki.mkdir()
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _run(["openssl", "req", "-x509", *curve, "-keyout", str(pki / "ca.key"), "-out",
          str(pki / "ca.crt"), "-days", "30", "-subj", "/CN=mlproject-test-ca"], 60)
    for name, subject, extensions in (
            ("server", "/CN=kube-apiserver",
             "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"),
            ("admin", "/O=system:masters/CN=mlproject-test-admin",
             "extendedKeyUsage=clientAuth")):
        (pki / f"{name}.ext").write_text(extensions + "\n")
        _run(["openssl", "req", *curve, "-keyout", str(pki / f"{name}.key"), "-out",
              str(pki / f"{name}.csr"), "-subj", subject], 60)
        _run(["openssl", "x509", "-req", "-in", str(pki / f"{name}.csr"), "-CA", str(pki / "ca.crt"),
              "-CAkey", str(pki / "ca.key"), "-CAcreateserial", "-days", "30", "-out",
              str(pki / f"{name}.crt"), "-extfile", str(pki / f"{name}.ext")], 60)
    _run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out",
          str(pki / "sa.key")], 60)
    return _Pki(pki / "ca.crt", pki / "server.crt", pki / "server.key", pki / "admin.crt",
                pki / "admin.key", pki / "sa.key")


def _pause_image(engine: Engine) -> None:
    if engine.docker("image", "inspect", PAUSE, check=False).returncode == 0:
        return
    dockerfile = f"FROM {engine.image}\nCMD {_PAUSE_CMD}\n"
    done = subprocess.run([f"{engine.bindir}/docker", "build", "-q", "-t", PAUSE, "-"],
                          input=dockerfile.encode(), capture_output=True, timeout=120,
                          env={**os.environ, **engine.environ()})
    if done.returncode != 0:
        raise Unavailable(f"the pod sandbox image could not be built: {done.stderr.decode()}")


def _node_ready(api: _Api, node: str) -> bool:
    doc = api.get(f"/api/v1/nodes/{node}")
    conditions = {c["type"]: c["status"] for c in doc.get("status", {}).get("conditions", [])}
    return conditions.get("Ready") == "True"


def _kubeconfig(path: Path, server: str, pki: _Pki) -> None:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": server,
                                                  "certificate-authority": str(pki.ca)}}],
        "users": [{"name": "test", "user": {"client-certificate": str(pki.admin_cert),
                                            "client-key": str(pki.admin_key)}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test",
                                                  "namespace": "default"}}]}))


@contextmanager
def running(engine: Engine) -> Iterator[Cluster]:
    """The cluster for the duration, on `engine`; every daemon stopped by pid after."""
    bindir = binaries()
    etcd_binary = etcd()
    if shutil.which("openssl") is None:
        raise Unavailable("openssl is not installed (apt-get install openssl): it makes the "
                          "service account key")
    _pause_image(engine)
    state = Path(tempfile.mkdtemp(prefix="mlpk8s-", dir="/tmp"))
    daemons = _Daemons(state)
    # the node's name is its Hostname address, which the API server dials the kubelet at
    # (logs): a loopback --node-ip is refused by the kubelet, and the kubelet listens only on
    # 127.0.0.1
    node = "localhost"
    ports = {name: _free_port() for name in ("etcd", "peer", "api", "kubelet", "healthz")}
    server = f"https://127.0.0.1:{ports['api']}"
    kubeconfig = state / "kubeconfig"
    deadline = time.monotonic() + START_TIMEOUT
    try:
        pki = _pki(state)
        _kubeconfig(kubeconfig, server, pki)
        key = pki.service_accounts
        daemons.start("etcd", [
            etcd_binary, "--name", "test", "--data-dir", str(state / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{ports['etcd']}",
            "--advertise-client-urls", f"http://127.0.0.1:{ports['etcd']}",
            "--listen-peer-urls", f"http://127.0.0.1:{ports['peer']}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{ports['peer']}",
            "--initial-cluster", f"test=http://127.0.0.1:{ports['peer']}",
            "--unsafe-no-fsync"])
        daemons.start("apiserver", [
            str(bindir / "kube-apiserver"), f"--etcd-servers=http://127.0.0.1:{ports['etcd']}",
            "--insecure-port=0", "--bind-address=127.0.0.1", f"--secure-port={ports['api']}",
            f"--tls-cert-file={pki.server_cert}", f"--tls-private-key-file={pki.server_key}",
            f"--client-ca-file={pki.ca}", "--anonymous-auth=false",
            "--advertise-address=127.0.0.1", "--kubelet-preferred-address-types=Hostname",
            "--endpoint-reconciler-type=none", "--service-cluster-ip-range=10.96.0.0/24",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={key}", f"--service-account-signing-key-file={key}",
            "--authorization-mode=AlwaysAllow", f"--feature-gates={FEATURES}",
            "--allow-privileged=true"])
        api = _Api(server, pki)
        _until("the API server", lambda: api.get("/healthz", raw=True) == b"ok", daemons,
               deadline)
        daemons.start("controller-manager", [
            str(bindir / "kube-controller-manager"), f"--kubeconfig={kubeconfig}",
            f"--root-ca-file={pki.ca}",
            f"--service-account-private-key-file={key}", "--leader-elect=false",
            "--port=0", "--secure-port=0", f"--feature-gates={FEATURES}",
            "--use-service-account-credentials=false"])
        daemons.start("scheduler", [
            str(bindir / "kube-scheduler"), f"--kubeconfig={kubeconfig}", "--leader-elect=false",
            "--port=0", "--secure-port=0"])
        kubelet_root = state / "kubelet"
        daemons.start("kubelet", [
            str(bindir / "kubelet"), f"--kubeconfig={kubeconfig}", "--container-runtime=docker",
            f"--docker-endpoint={engine.host}", f"--pod-infra-container-image={PAUSE}",
            f"--container-runtime-endpoint=unix://{state / 'dockershim.sock'}",
            f"--experimental-dockershim-root-directory={state / 'dockershim'}",
            "--cgroup-driver=cgroupfs", "--cgroups-per-qos=false", "--enforce-node-allocatable=",
            "--fail-swap-on=false", "--address=127.0.0.1",
            f"--port={ports['kubelet']}", "--healthz-bind-address=127.0.0.1",
            f"--healthz-port={ports['healthz']}", "--read-only-port=0",
            f"--root-dir={kubelet_root}", f"--cert-dir={state / 'kubelet-certs'}",
            f"--hostname-override={node}", "--image-gc-high-threshold=100",
            "--image-gc-low-threshold=99",
            "--eviction-hard=memory.available<1Mi,nodefs.available<1%,imagefs.available<1%",
            "--register-node=true", "--v=1"])
        _until("the node to be Ready", lambda: _node_ready(api, node), daemons, deadline)
        _until("the default service account", lambda: api.get(
            "/api/v1/namespaces/default/serviceaccounts/default"), daemons, deadline)
        yield Cluster(kubeconfig, server, node, engine.image, engine, state, api)
    finally:
        daemons.stop()
        with suppress(Exception):  # the pods' containers (the engine's own end removes any)
            ids = engine.containers("label=io.kubernetes.pod.name")
            if ids:
                engine.docker("rm", "-f", *ids, check=False, timeout=60)
        subprocess.run(["umount", "-R", "-l", str(state / "kubelet")], capture_output=True)
        shutil.rmtree(state, ignore_errors=True)


def unavailable(reason: str) -> None:
    """Skip, or where engines are required (CI), fail, with the reason."""
    if os.environ.get("MLPROJECT_REQUIRE_ENGINES") == "1":
        pytest.fail(f"the Kubernetes cluster is required here and cannot be had: {reason}")
    pytest.skip(f"no Kubernetes cluster: {reason}")
