"""A conda environment file as a uv environment, where conda cannot be had: its `python` as the
interpreter, and every other dependency as a pip requirement, as MLflow's virtualenv manager
converts a conda.yaml. Only what has a PyPI equivalent is translated; anything else (compilers,
CUDA libraries, conda's own packages) is refused, named.

Conda's match specs become PEP 440 requirements: `name=1.2` is conda's prefix match, so
`name==1.2.*`; `name==1.2`, `name>=1.2,<2` and `name 1.2.*` keep their meaning; a build string
(`name=1.2=py39_0`) has no pip form and is dropped, with a note. A channel (`conda-forge::name`)
is dropped: pip has one index. A `pip:` list is taken as written (options such as `-e` or
`--index-url` are refused: they would change where packages come from).
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlproject.runner.envs.base import EnvError
from mlproject.runner.envs.pyinputs import Inputs
from mlproject.spec.model import Environment

MAX_BYTES = 1 << 20
SOLVERS = ("micromamba", "mamba", "conda")
# conda names whose PyPI name differs
PYPI_NAMES = {
    "pytorch": "torch", "py-xgboost": "xgboost", "py-lightgbm": "lightgbm",
    "matplotlib-base": "matplotlib", "opencv": "opencv-python", "py-opencv": "opencv-python",
    "msgpack-python": "msgpack", "pytables": "tables", "tensorflow-base": "tensorflow",
    "pyqt": "PyQt5", "pillow": "pillow", "python-dateutil": "python-dateutil",
    "scikit-learn": "scikit-learn", "libprotobuf": None, "protobuf": "protobuf",
    "graphviz": None, "python-graphviz": "graphviz", "pytorch-cpu": "torch",
    "ruamel_yaml": "ruamel.yaml", "typing_extensions": "typing-extensions",
    "tensorflow-gpu": "tensorflow", "pytorch-gpu": "torch", "pyyaml": "PyYAML",
    # the same name on both: known, so not left to uv's resolution to check
    "numpy": "numpy", "scipy": "scipy", "pandas": "pandas", "matplotlib": "matplotlib",
    "requests": "requests", "six": "six", "mlflow": "mlflow", "xgboost": "xgboost",
    "lightgbm": "lightgbm", "tensorflow": "tensorflow", "keras": "keras", "click": "click",
}
# what only conda has: native libraries and toolchains, conda's own machinery
CONDA_ONLY = re.compile(r"^(cudatoolkit|cuda-.*|cudnn|nccl|mkl(-.*)?|intel-openmp|blas|libblas|"
                        r"openblas|libopenblas|libgcc.*|libstdcxx.*|libgfortran.*|gcc.*|gxx.*|"
                        r"gfortran.*|clang.*|compilers|cmake|make|ninja|ca-certificates|openssl|"
                        r"certifi-conda|conda.*|mamba|libffi|zlib|xz|bzip2|readline|ncurses|"
                        r"sqlite|tk|libuuid|ld_impl_linux-64|_libgcc_mutex|_openmp_mutex|"
                        r"libgomp|r-.*|r|nodejs|git|cudatoolkit-dev|pytorch-cuda|nvidia.*|"
                        r"libprotobuf|graphviz|hdf5|libxgboost|liblightgbm|ffmpeg|jpeg|libpng)$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_VERSION = re.compile(r"^[A-Za-z0-9.*+!_-]+$")
_OPERATOR = re.compile(r"^(==|!=|>=|<=|>|<|~=)")


@dataclass(frozen=True)
class Translation:
    python: str | None
    requirements: tuple[str, ...]
    translated: tuple[tuple[str, str], ...]  # (conda spec, requirement)
    notes: tuple[str, ...]
    unmapped: tuple[str, ...] = ()  # conda names taken as PyPI names: uv's resolution checks them

    def source(self, env_file: str) -> str:
        """The recipe's `source`: the file, and each conda spec with what it became."""
        pairs = "; ".join(f"{spec} -> {req}" for spec, req in self.translated) or "none"
        return f"{env_file} translated for uv (conda specs: {pairs})"


def solver() -> str | None:
    return next((found for found in map(shutil.which, SOLVERS) if found), None)


def wanted(root: str, env: Environment, manager: str | None) -> bool:
    """Whether the conda environment `env` is to be built as a uv environment: asked for
    (`--env-manager uv|virtualenv`), or it has no conda-lock.yml, py-rattler cannot reach its
    channels to solve it, and no conda program is here."""
    if env.kind != "conda" or manager == "conda" or env.file is None or not (
            Path(root) / env.file).is_file():
        return False  # a file that is not there: said as for any conda environment
    if manager in ("uv", "virtualenv"):
        return True
    from mlproject.runner.envs import conda

    lock = env.lock or str(Path(env.file).with_name(conda.LOCK_NAME))
    if (Path(root) / lock).is_file() or solver() is not None:
        return False
    return not conda.solvable(root, env)


def _spec_requirement(spec: str) -> tuple[str | None, str | None, str | None]:
    """(requirement, note, refusal) for one conda match spec."""
    text = spec.strip()
    if "::" in text:
        text = text.split("::", 1)[1]
    if "[" in text or "|" in text or ";" in text or "#" in text:
        return None, None, f"{spec!r} (a match spec pip has no form for)"
    name, version, build = text, "", ""
    if " " in text:
        name, _, rest = text.partition(" ")
        version, _, build = rest.strip().partition(" ")
    else:
        found = re.search(r"[=<>!~]", text)
        if found:
            name, version = text[:found.start()], text[found.start():]
    name = name.strip()
    if not _NAME.match(name):
        return None, None, f"{spec!r} (not a package name)"
    lowered = name.lower()
    if CONDA_ONLY.match(lowered) or (lowered in PYPI_NAMES and PYPI_NAMES[lowered] is None):
        return None, None, name
    pypi = PYPI_NAMES.get(lowered) or name
    note = None
    version = version.strip()
    if version.startswith("=") and not version.startswith("=="):
        # conda's `=1.2` (or `=1.2=build`): a prefix match of the version
        version, _, build = version[1:].partition("=")
        version = f"=={version.rstrip('.*')}.*" if version and version != "*" else ""
    elif version and not _OPERATOR.match(version):
        version = f"=={version.rstrip('.*')}.*" if version != "*" else ""  # `name 1.2`
    if build:
        note = f"{spec}: the build string {build!r} has no pip form and is left out"
    for part in filter(None, version.split(",")):
        if not (_OPERATOR.match(part) and _VERSION.match(_OPERATOR.sub("", part))):
            return None, None, f"{spec!r} (a version pip has no form for)"
    return f"{pypi}{version}", note, None


def _shown(value: object) -> str:
    """A YAML value in a message, bounded: aliases can make a small file a huge value."""
    import reprlib

    bounded = reprlib.Repr()
    bounded.maxlevel, bounded.maxstring, bounded.maxother = 2, 60, 60
    return bounded.repr(value)


def _python(spec: str) -> str | None:
    found = re.fullmatch(r"python\s*(?:==?|\s)\s*(\d+(?:\.\d+){0,2})(?:\.\*)?(?:=.*)?", spec.strip())
    return found.group(1) if found else None


def translate(env_file: Path, shown: str) -> Translation:
    """The conda environment file as a Python version and pip requirements; EnvError naming
    every dependency that needs conda, or what is wrong with the file."""
    import yaml

    try:
        with open(env_file, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise EnvError(f"cannot read {shown}: {exc.strerror}") from None
    if len(data) > MAX_BYTES:
        raise EnvError(f"{shown} is over {MAX_BYTES >> 20} MiB: not an environment file")
    try:
        doc: Any = yaml.safe_load(data)
    except (yaml.YAMLError, RecursionError) as exc:
        raise EnvError(f"{shown} is not valid YAML: {str(exc)[:300]}") from None
    if not isinstance(doc, dict):
        raise EnvError(f"{shown}: expected a mapping with dependencies")
    deps = doc.get("dependencies") or []
    if not isinstance(deps, list):
        raise EnvError(f"{shown}: dependencies: expected a list")
    python: str | None = None
    requirements: list[str] = []
    translated: list[tuple[str, str]] = []
    notes: list[str] = []
    refused: list[str] = []
    unmapped: list[str] = []
    for item in deps:
        if isinstance(item, dict):
            if set(item) != {"pip"} or not isinstance(item["pip"], list):
                refused.append(f"{_shown(item)} (only a `pip:` list may stand among them)")
                continue
            for line in item["pip"]:
                if not isinstance(line, str) or not line.strip():
                    refused.append(f"pip: {_shown(line)} (not a requirement)")
                elif not line.strip().isprintable():  # a line break would start a line of its own
                    refused.append(f"pip: {_shown(line)} (a requirement is one line)")
                elif line.strip().startswith("-"):
                    refused.append(f"pip: {line.strip()[:60]!r} (an option of pip's: where "
                                   "packages come from is not translated)")
                else:
                    requirements.append(line.strip())
            continue
        if not isinstance(item, str) or not item.strip() or not item.strip().isprintable():
            refused.append(f"{_shown(item)} (not a match spec)")
            continue
        spec = item.strip()
        head = re.split(r"[\s=<>!~]", spec.split("::")[-1], maxsplit=1)[0].lower()
        if head == "python":
            python = _python(spec.split("::")[-1])
            if python is None and spec.split("::")[-1].strip() != "python":
                notes.append(f"{spec}: only python=X.Y[.Z] chooses the interpreter; the default "
                             "one is used")
            continue
        if head == "pip":
            continue  # with the interpreter's own, below
        requirement, note, refusal = _spec_requirement(spec)
        if refusal is not None:
            refused.append(refusal)
            continue
        assert requirement is not None
        requirements.append(requirement)
        translated.append((spec, requirement))
        if head not in PYPI_NAMES:
            unmapped.append(re.split(r"[=<>!~,*]", requirement, maxsplit=1)[0])
        if note:
            notes.append(note)
    # A conda environment's python comes with pip, setuptools and wheel (pip's dependencies
    # there); code run in one may import them (pkg_resources), a uv environment has none.
    named = {re.split(r"[\s=<>!~;\[]", r, maxsplit=1)[0].lower() for r in requirements}
    basics = [b for b in ("pip", "setuptools", "wheel") if b not in named]
    if basics:
        requirements[:0] = basics
        translated.insert(0, ("python", ", ".join(basics)))
    if refused:
        more = f" and {len(refused) - 20} more" if len(refused) > 20 else ""
        raise EnvError(f"{shown} cannot be built as a uv environment: "
                       f"{'these are' if len(refused) > 1 else 'this is'} not for pip: "
                       f"{', '.join(refused[:20])}{more}; give their pip equivalents under "
                       "`pip:`, or lock it where conda is (`mlproject lock`) to run it as a "
                       "conda environment")
    return Translation(python, tuple(requirements), tuple(translated), tuple(notes),
                       tuple(unmapped))


def inputs(root: str, env: Environment) -> tuple[Inputs, Translation]:
    """What the python environment machinery takes: the translation as requirements text."""
    assert env.file is not None
    origin = Path(root) / env.file
    found = translate(origin, env.file)
    text = "".join(f"{line}\n" for line in found.requirements)
    lock = origin.with_name(f"{origin.stem}.uv.lock")  # a lock of the translation, if written
    # each requirement's line in the file (the spec it came from), so errors point there
    lines = origin.read_text(encoding="utf-8", errors="replace").splitlines()
    specs = dict((req, spec) for spec, req in found.translated)
    where = tuple(next((i + 1 for i, line in enumerate(lines) if specs.get(req, req) in line), 1)
                  for req in found.requirements)
    return Inputs(found.python or env.python, text, origin, lock, Path(root), where), found
