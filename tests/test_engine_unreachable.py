"""An engine that cannot be reached, or credentials that are not credentials, for the Kubernetes
and Ray backends: exit 2 before anything is submitted or recorded, with what was wrong and the
fix, never a traceback. No cluster is needed: that is the point. (Slurm's own are in
tests/test_slurm_backend.py, against a controller that was stopped.)"""
from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Result, git_init

TEXT = "name: u\nentry_points:\n  main:\n    command: \"echo never > never.txt\"\n"


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _refused(done: Result, root: Path, *said: str) -> None:
    assert done.code == 2, done.err
    assert "Traceback" not in done.err and "internal error" not in done.err, done.err
    for words in said:
        assert words in done.err, done.err
    assert not (root / ".mlproject" / "runs").exists() and not (root / "never.txt").exists()


KUBECONFIGS = {
    "not YAML": ("clusters: [1\n", "is not a kubeconfig file"),
    "YAML, not a mapping": ("just a line\n", "is not a kubeconfig file"),
    "the wrong shape": ("clusters: 3\n", "is not a kubeconfig file"),
    "empty": ("", "no usable Kubernetes credentials"),
}


@pytest.mark.parametrize("case", sorted(KUBECONFIGS))
def test_a_kubeconfig_that_is_not_one_is_exit_2_in_one_line(
        case: str, cli: Callable[..., Result], project: Callable[..., Path],
        tmp_path: Path) -> None:
    pytest.importorskip("kubernetes", reason="the kubernetes extra is not installed")
    text, said = KUBECONFIGS[case]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(text)
    root = git_init(project({"MLproject": TEXT, ".gitignore": ".mlproject/\n"}))
    done = cli("run", str(root), "--backend", "kubernetes", "--backend-config",
               json.dumps({"kubeconfig": str(kubeconfig)}))
    _refused(done, root, said, "set the backend's `kubeconfig`")


def test_a_kubernetes_api_that_does_not_answer_is_exit_2(
        cli: Callable[..., Result], project: Callable[..., Path], tmp_path: Path) -> None:
    pytest.importorskip("kubernetes", reason="the kubernetes extra is not installed")
    port = _closed_port()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        f"clusters: [{{name: a, cluster: {{server: 'https://127.0.0.1:{port}'}}}}]\n"
        "contexts: [{name: a, context: {cluster: a, user: u}}]\ncurrent-context: a\n"
        "users: [{name: u, user: {token: x}}]\n")
    root = git_init(project({"MLproject": TEXT, ".gitignore": ".mlproject/\n"}))
    done = cli("run", str(root), "--backend", "kubernetes", "--backend-config",
               json.dumps({"kubeconfig": str(kubeconfig)}))
    _refused(done, root, f"https://127.0.0.1:{port}", "cannot be reached",
             "check that the cluster runs")


@pytest.mark.parametrize("address,said", [
    ("http://127.0.0.1:{port}", "does not answer"),
    ("not a url", "is not the dashboard's http(s) address"),
    ("ray://127.0.0.1:10001", "is not the dashboard's http(s) address"),
])
def test_a_ray_address_that_is_wrong_or_dead_is_exit_2(
        address: str, said: str, cli: Callable[..., Result],
        project: Callable[..., Path]) -> None:
    pytest.importorskip("ray", reason="the ray extra is not installed")
    root = git_init(project({"MLproject": TEXT, ".gitignore": ".mlproject/\n"}))
    done = cli("run", str(root), "--backend", "ray", "--backend-config",
               json.dumps({"address": address.format(port=_closed_port())}))
    _refused(done, root, said)


@pytest.mark.parametrize("backend,config,shown", [
    ("slurm", {"bin": "/nonexistent"}, "#SBATCH --gres=gpu:2"),
    ("kubernetes", {"kubeconfig": "/nonexistent"}, "nvidia.com/gpu: '2'"),
    ("ray", {"address": "http://127.0.0.1:{port}"}, '"entrypoint_num_gpus": 2.0'),
])
def test_plan_shows_the_submission_with_no_engine_to_submit_to(
        backend: str, config: dict[str, str], shown: str, cli: Callable[..., Result],
        project: Callable[..., Path]) -> None:
    """What would be submitted is known without the engine: `plan --backend` shows it beside
    why the step cannot start from here, and exits 0 (it only shows)."""
    pytest.importorskip({"kubernetes": "kubernetes", "ray": "ray"}.get(backend, "json"))
    root = git_init(project({"MLproject": TEXT.replace(
        '"echo never > never.txt"', '"echo never > never.txt"\n    resources: {gpu: 2}'),
        ".gitignore": ".mlproject/\n"}))
    settings = {k: v.format(port=_closed_port()) for k, v in config.items()}
    done = cli("plan", str(root), "--backend", backend, "--backend-config", json.dumps(settings))
    assert done.code == 0, done.err
    assert "   cannot start: " in done.out and shown in done.out, done.out
    assert not (root / ".mlproject" / "runs").exists()
