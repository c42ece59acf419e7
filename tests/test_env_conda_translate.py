"""A conda.yaml without conda-lock.yml and without conda: built as a locked uv environment from
its pip-translatable dependencies (as MLflow's virtualenv manager converts one), the translation
recorded; what needs conda is refused, named. `--env-manager` as `mlflow run` spells it."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Result, git_init
from mlproject.runner.envs import condatranslate
from mlproject.runner.envs.base import EnvError
from mlproject.runner.state import records
from mlproject.spec.model import Environment

SPEC = """
name: ct
conda_env: conda.yaml
entry_points:
  main:
    command: "python -c 'import six, sys; print(six.__version__, sys.version_info[:2])'"
"""
CONDA = """
name: ct
channels: [conda-forge]
dependencies:
  - python=3.11
  - pip
  - conda-forge::six=1.16
  - pip:
    - packaging>=20
"""


def _translate(tmp_path: Path, text: str) -> condatranslate.Translation:
    path = tmp_path / "conda.yaml"
    path.write_text(text)
    return condatranslate.translate(path, "conda.yaml")


@pytest.mark.parametrize(("spec", "requirement"), [
    ("numpy", "numpy"), ("numpy=1.21", "numpy==1.21.*"), ("numpy=1.21.*", "numpy==1.21.*"),
    ("numpy==1.21.2", "numpy==1.21.2"), ("numpy>=1.2,<2", "numpy>=1.2,<2"),
    ("numpy 1.21", "numpy==1.21.*"), ("numpy 1.21.* py39_0", "numpy==1.21.*"),
    ("numpy=1.21.2=py39h0", "numpy==1.21.2.*"), ("conda-forge::numpy", "numpy"),
    ("pytorch=1.13", "torch==1.13.*"), ("py-xgboost", "xgboost"), ("numpy=*", "numpy"),
    ("matplotlib-base>=3", "matplotlib>=3"), ("scikit-learn=0.19.1", "scikit-learn==0.19.1.*"),
])
def test_each_form_of_a_conda_spec(tmp_path: Path, spec: str, requirement: str) -> None:
    found = _translate(tmp_path, f"dependencies: [python=3.11, {json.dumps(spec)}]")
    assert found.python == "3.11" and found.requirements[-1] == requirement
    assert found.translated[-1] == (spec, requirement)
    if "py39" in spec:
        assert found.notes and "build string" in found.notes[0]


def test_pip_and_the_interpreters_own_packages(tmp_path: Path) -> None:
    found = _translate(tmp_path, CONDA)
    assert found.requirements == ("pip", "setuptools", "wheel", "six==1.16.*", "packaging>=20")
    assert found.source("conda.yaml") == ("conda.yaml translated for uv (conda specs: python -> "
                                          "pip, setuptools, wheel; conda-forge::six=1.16 -> "
                                          "six==1.16.*)")
    assert _translate(tmp_path, "dependencies: [pip]").python is None  # the default interpreter


@pytest.mark.parametrize(("text", "refused"), [
    ("dependencies: [python=3.9, cudatoolkit=11.3, mkl, numpy]", "cudatoolkit, mkl"),
    ("dependencies: [libgcc-ng, r-base]", "libgcc-ng, r-base"),
    ("dependencies: [{pip: ['-e git+https://h/x.git#egg=x']}]", "an option of pip's"),
    ("dependencies: [{pip: ['--index-url=https://evil/simple', six]}]", "an option of pip's"),
    ("dependencies: ['numpy; os_name==\"x\"']", "a match spec pip has no form for"),
    ("dependencies: ['numpy >=1|<0.5']", "a match spec pip has no form for"),
    ("dependencies: ['--index-url=x']", "not a package name"),
    ("dependencies: [{conda: [x]}]", "only a `pip:` list"),
    ("dependencies: [7]", "not a match spec"),
    ("dependencies: ['numpy=1.2$(id)']", "a version pip has no form for"),
    ("dependencies: ['numpy=1.2 $(rm -rf ~)']", "not a package name"),
])
def test_what_needs_conda_or_is_not_a_requirement_is_refused_named(
        tmp_path: Path, text: str, refused: str) -> None:
    with pytest.raises(EnvError, match=r"no conda-lock\.yml, no conda program is here") as caught:
        _translate(tmp_path, text)
    assert refused in str(caught.value)


@pytest.mark.parametrize(("text", "message"), [
    ("- a list", "expected a mapping"), ("dependencies: {a: 1}", "expected a list"),
    ("dependencies: [", "is not valid YAML"), ("[" * 5000 + "]" * 5000, "is not valid YAML"),
])
def test_a_malformed_file_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(EnvError, match=message):
        _translate(tmp_path, text)
    huge = tmp_path / "conda.yaml"
    huge.write_bytes(b"#" * (condatranslate.MAX_BYTES + 10))
    with pytest.raises(EnvError, match="over 1 MiB"):
        condatranslate.translate(huge, "conda.yaml")


def test_when_it_is_translated(tmp_path: Path) -> None:
    (tmp_path / "conda.yaml").write_text(CONDA)
    env = Environment("conda_env", "conda", file="conda.yaml")
    assert condatranslate.wanted(str(tmp_path), env, None)  # no lock, no conda program here
    assert not condatranslate.wanted(str(tmp_path), env, "conda")
    (tmp_path / "conda-lock.yml").write_text("version: 1\n")
    assert not condatranslate.wanted(str(tmp_path), env, None)  # the lock is installed
    assert condatranslate.wanted(str(tmp_path), env, "virtualenv")  # as MLflow's manager does
    assert condatranslate.wanted(str(tmp_path), env, "uv")
    python = Environment("p", "python", file="python_env.yaml")
    assert not condatranslate.wanted(str(tmp_path), python, "uv")


def test_a_translated_environment_runs_and_its_record_says_how(
        cli: Callable[..., Result], project: Callable[..., Path]) -> None:
    root = git_init(project({"MLproject": SPEC, "conda.yaml": CONDA}))
    planned = cli("plan", str(root))
    assert planned.code == 0 and "conda.yaml, translated for uv" in planned.out, planned.out
    done = cli("run", str(root))
    assert done.code == 0, done.err
    assert ("conda.yaml: no conda-lock.yml and no conda: built as a uv environment from its "
            "pip-translatable dependencies") in done.err
    [run_dir] = list(records.runs_dir(str(root)).iterdir())
    record = json.loads((run_dir / "run.json").read_text())
    recipe = record["environment"]["recipe"]
    assert record["environment"]["kind"] == "python" and recipe["require_hashes"] is True
    assert "conda-forge::six=1.16 -> six==1.16.*" in recipe["lock"]
    assert any(p.startswith("six==1.16.") for p in recipe["pins"])
    assert "1.16." in (run_dir / "log.txt").read_text()
    again = cli("run", str(root))  # the same fingerprint: up to date, nothing resolved again
    assert again.code == 0 and "resolving" not in again.err


def test_env_manager_as_mlflow_spells_it(cli: Callable[..., Result],
                                         project: Callable[..., Path]) -> None:
    root = git_init(project({"MLproject": SPEC, "conda.yaml": CONDA}))
    refused = cli("run", str(root), "--env-manager", "conda")
    assert refused.code == 2 and "not locked" in refused.err, refused.err
    forced = cli("plan", str(root), "--env-manager", "virtualenv")
    assert forced.code == 0 and "translated for uv" in forced.out
    assert "no conda-lock.yml and no conda" not in forced.err  # asked for: nothing to explain
    local = cli("plan", str(root), "--env-manager", "local")
    assert local.code == 0 and "translated" not in local.out
    python = git_init(project({"MLproject": "name: p\npython_env: python_env.yaml\n"
                                            "entry_points: {main: {command: 'true'}}\n",
                               "python_env.yaml": "python: '3.11'\ndependencies: []\n"}, "py"))
    wrong = cli("run", str(python), "--env-manager", "conda")
    assert wrong.code == 2 and "it is a Python environment" in wrong.err, wrong.err
    with pytest.raises(SystemExit) as caught:  # argparse's own refusal, exit 2
        cli("run", str(root), "--env-manager", "mamba")
    assert caught.value.code == 2
