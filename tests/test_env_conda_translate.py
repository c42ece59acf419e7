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
    ('dependencies: ["six=1.2\\n--index-url=https://evil/simple"]', "not a match spec"),
    ('dependencies: [{pip: ["six\\n--index-url=https://evil/simple"]}]', "a requirement is one line"),
    ('dependencies: [{pip: ["six\\r-e ."]}]', "a requirement is one line"),
    ("dependencies: [[a, [b]]]", "not a match spec"),
    ("dependencies: [{pip: [{a: 1}]}]", "not a requirement"),
    # aliases: a few lines that are a value of 9**8 leaves, never to be made text whole
    ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
     "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
     "dependencies: [*h, {pip: *h}, {pip: [*h]}, {conda: *h}]\n", "not a match spec"),
    ("dependencies: ['numpy=1.2$(id)']", "a version pip has no form for"),
    ("dependencies: ['numpy=1.2 $(rm -rf ~)']", "not a package name"),
])
def test_what_needs_conda_or_is_not_a_requirement_is_refused_named(
        tmp_path: Path, text: str, refused: str) -> None:
    with pytest.raises(EnvError, match=r"^conda\.yaml cannot be built as a uv environment: ") as caught:
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


@pytest.mark.slow
def test_a_translated_environment_runs_and_its_record_says_how(
        cli: Callable[..., Result], project: Callable[..., Path], tmp_path: Path) -> None:
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
    assert recipe["translated"] == [
        {"conda": "python", "requirement": "pip, setuptools, wheel"},
        {"conda": "conda-forge::six=1.16", "requirement": "six==1.16.*"}]
    again = cli("run", str(root))  # the same fingerprint: up to date, nothing resolved again
    assert again.code == 0 and "resolving" not in again.err
    plan = cli("plan", str(root), "--json")
    assert json.loads(plan.out)["steps"][0]["environment"]["kind"] == "python"
    (tmp_path / "plan.json").write_text(plan.out)
    replayed = cli("run", str(root), "--plan", str(tmp_path / "plan.json"), "--force")
    assert replayed.code == 0, replayed.err
    latest = records.list_runs(str(root))[-1]["environment"]
    assert "six==1.16.*" in latest["recipe"]["lock"] and latest["key"] == record["environment"]["key"]


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


def test_a_lock_beside_it_is_not_translated_unless_asked(
        cli: Callable[..., Result], project: Callable[..., Path]) -> None:
    root = git_init(project({"MLproject": SPEC, "conda.yaml": CONDA,
                             "conda-lock.yml": "version: 1\nmetadata: {}\npackage: []\n"}))
    conda = cli("plan", str(root))  # the lock (here with no packages for this platform) is used
    assert "(conda: conda.yaml; cannot be built:" in conda.out and "has no packages for" in conda.out
    uv = json.loads(cli("plan", str(root), "--env-manager", "virtualenv", "--json").out)
    env = uv["steps"][0]["environment"]
    assert uv["env_manager"] == "virtualenv" and env["kind"] == "python", env
    assert "translated for uv" in json.dumps(env)


def test_a_name_in_neither_list_is_taken_as_a_pypi_name(tmp_path: Path) -> None:
    found = _translate(tmp_path, "dependencies: [python=3.11, pytorch, zz-not-mapped=2, numpy]")
    assert found.requirements[-3:] == ("torch", "zz-not-mapped==2.*", "numpy")
    assert found.unmapped == ("zz-not-mapped",)  # uv's resolution checks those; see python.py


CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "mlflow-projects"


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"MLflow's example projects are not at {CORPUS}")
@pytest.mark.parametrize(("name", "python", "requirements"), [
    ("sklearn_logistic_regression", "3.6",
     ("pip", "setuptools", "wheel", "scikit-learn==0.19.1.*", "mlflow>=1.0")),
    ("lightgbm_native", "3.7", ("pip", "setuptools", "wheel", "mlflow>=1.6.0", "matplotlib",
                                "lightgbm")),
    ("xgboost_native", "3.7", ("pip", "setuptools", "wheel", "mlflow>=1.6.0", "scipy",
                               "scikit-learn", "matplotlib", "xgboost")),
])
def test_mlflows_own_conda_files_translate(name: str, python: str,
                                           requirements: tuple[str, ...]) -> None:
    found = condatranslate.translate(CORPUS / name / "conda.yaml", "conda.yaml")
    assert (found.python, found.requirements, found.notes) == (python, requirements, ())


def test_what_needs_conda_is_refused_by_run_in_one_message(
        cli: Callable[..., Result], project: Callable[..., Path]) -> None:
    root = git_init(project({"MLproject": SPEC, "conda.yaml": "channels: [conda-forge]\n"
                             "dependencies: [python=3.10, cudatoolkit=11.8, numpy, libgcc-ng]\n"}))
    done = cli("run", str(root))
    assert done.code == 2 and "Traceback" not in done.err, done.err
    assert ("environment 'conda_env': conda.yaml cannot be built as a uv environment: these are "
            "not for pip: cudatoolkit, libgcc-ng; give their pip equivalents under `pip:`, or lock "
            "it where conda is (`mlproject lock`) to run it as a conda environment") in done.err


@pytest.mark.slow
def test_python_3_6_as_an_old_mlflow_example_asks(cli: Callable[..., Result],
                                                  project: Callable[..., Path]) -> None:
    """pyenv's 3.6 (uv builds environments for it, though it supports 3.7+ itself)."""
    from mlproject.runner.envs import interpreters

    try:
        interpreters.locate("3.6")
    except EnvError as exc:
        pytest.skip(f"no Python 3.6 here: {exc}")
    root = git_init(project({"MLproject": SPEC, "conda.yaml": "dependencies: [python=3.6, six=1.16]\n"}))
    done = cli("run", str(root))
    assert done.code == 0, done.err
    [run_dir] = list(records.runs_dir(str(root)).iterdir())
    record = json.loads((run_dir / "run.json").read_text())
    assert record["environment"]["recipe"]["version"].startswith("3.6.")
    assert "1.16.0 (3, 6)" in (run_dir / "log.txt").read_text()


def test_a_plan_written_before_translations_were_planned_still_reads() -> None:
    """Plan data of a python environment from before `translated` was added: read as none."""
    from mlproject.runner.envs import interpreters, python
    from mlproject.runner.envs.requirements import Requirements

    recipe = python._with_key(python.PythonRecipe(interpreters.locate(None), Requirements((), ()),
                                                  "no requirements"))
    data = python.plan_data(recipe)
    older = {k: v for k, v in data.items() if k != "translated"}
    assert python.decode_plan(older).translated == ()
    with pytest.raises(EnvError, match="does not fit a python environment"):
        python.decode_plan({**older, "surprise": 1})
    with pytest.raises(EnvError, match="does not fit a python environment"):
        python.decode_plan({k: v for k, v in older.items() if k != "key"})
