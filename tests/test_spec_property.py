"""Whatever the file holds, `load()` returns a Spec or raises SpecError, nothing else; and every
problem it reports is located (`file:line:col: ...`) or about the whole file (`file: ...`)."""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlproject.spec import Spec, SpecError, load

LOCATED = re.compile(r"^[^:]+:\d+:\d+: ")
WHOLE_FILE = re.compile(r"^[^:]+: \S")

VALID = """\
name: churn
environment: train
environments:
  train: {python: "3.11", requirements: requirements.lock}
  gpu:
    conda: environment.yml
    lock: conda-lock.yml
  image: {docker: {image: "ghcr.io/org/train:1"}}
data:
  train: {path: data/train.csv, rev: v2}
resources: {cpu: 2, memory: 8Gi, gpu: 0, timeout: 2h}
entry_points:
  train:
    data: [train]
    resources: {gpu: 1, memory: 16Gi}
    parameters:
      alpha: {type: float, default: 0.5}
      epochs: int
      name: {type: string, default: "{}"}
    command: "python train.py --alpha {alpha} --epochs {epochs} --data {data.train}"
    outputs: [models/model.pkl]
    metrics: metrics.json
  evaluate:
    needs: [train]
    environment: image
    command: >
      python evaluate.py
      --strict
    gates: {accuracy: {min: 0.85}, auc: {not_worse_than: base, tolerance: 0.01}}
"""



def fast(examples: int) -> settings:
    # The `here` fixture is one directory for all examples of a test: rewritten each time.
    return settings(max_examples=examples, deadline=None, suppress_health_check=[
        HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def outcome(root: Path, content: bytes) -> Spec | SpecError:
    """Load `content` as MLproject; anything but a Spec or a well-formed SpecError fails."""
    (root / "MLproject").write_bytes(content)
    try:
        spec = load("MLproject")
    except SpecError as exc:
        assert exc.problems, "a SpecError must carry at least one problem"
        for problem in exc.problems:
            text = str(problem)
            if problem.line == 0:
                assert WHOLE_FILE.match(text), text
            else:
                assert LOCATED.match(text), text
                assert problem.line >= 1 and problem.col >= 1, text
        assert any(p.severity == "error" for p in exc.problems)
        return exc
    assert isinstance(spec, Spec)
    assert spec.entry_points
    for warning in spec.warnings:
        assert warning.severity == "warning"
        assert LOCATED.match(str(warning)), str(warning)
    return spec


def test_the_base_document_is_valid(here: Path) -> None:
    assert isinstance(outcome(here, VALID.encode()), Spec)


# -- mutations of a valid file ----------------------------------------------------------------

NASTY = list(":{}[],-?#&*!|>'\"%@` \t\n\r\\") + [
    "\x00", "\ufeff", "\u2028", "\x85", "é", "\U0001f600", "\ud7ff", "---", "...", "<<: ", "*a",
    "&a "]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    text = VALID
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "truncate", "duplicate",
                                   "indent", "dedent", "swap"]))
        lines = text.split("\n")
        if op == "insert":
            at = draw(st.integers(0, len(text)))
            piece = draw(st.sampled_from(NASTY) | st.text(max_size=4))
            text = text[:at] + piece + text[at:]
        elif op == "delete" and text:
            at = draw(st.integers(0, len(text) - 1))
            text = text[:at] + text[at + draw(st.integers(1, 12)):]
        elif op == "replace" and text:
            at = draw(st.integers(0, len(text) - 1))
            text = text[:at] + draw(st.sampled_from(NASTY) | st.characters()) + text[at + 1:]
        elif op == "truncate":
            text = text[:draw(st.integers(0, len(text)))]
        elif op == "duplicate":
            i = draw(st.integers(0, len(lines) - 1))
            lines.insert(i, lines[i])
            text = "\n".join(lines)
        elif op in ("indent", "dedent"):
            i = draw(st.integers(0, len(lines) - 1))
            n = draw(st.integers(1, 4))
            lines[i] = " " * n + lines[i] if op == "indent" else lines[i][n:]
            text = "\n".join(lines)
        elif op == "swap" and len(lines) > 1:
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig"]))
    return text.encode(encoding, "surrogatepass")


@pytest.mark.slow
@fast(400)
@given(content=mutated())
def test_mutations_of_a_valid_file(here: Path, content: bytes) -> None:
    outcome(here, content)


@fast(150)
@given(content=st.binary(max_size=400))
def test_random_bytes(here: Path, content: bytes) -> None:
    outcome(here, content)


@fast(150)
@given(content=st.text(max_size=300))
def test_random_unicode(here: Path, content: str) -> None:
    outcome(here, content.encode("utf-8", "surrogatepass"))


@fast(100)
@given(prefix=st.text(alphabet="{}[]:,-&*!|> \n\tab'\"#", max_size=200))
def test_random_yaml_punctuation(here: Path, prefix: str) -> None:
    outcome(here, prefix.encode())


# -- random structured documents, so that validation and building are exercised --------------

TOP_KEYS = ["format", "name", "environment", "environments", "data", "resources", "entry_points",
            "python_env", "conda_env", "docker_env"]
ENTRY_KEYS = ["command", "parameters", "environment", "data", "resources", "needs", "outputs",
              "metrics", "gates"]
OTHER_KEYS = ["type", "default", "description", "cpu", "memory", "gpu", "timeout", "python",
              "requirements", "conda", "lock", "docker", "image", "volumes", "run_args", "path",
              "rev", "repo", "md5", "min", "max", "not_worse_than", "tolerance", "direction",
              "resorces", "type str", "type:float", "main", "train", "a", "b"]
WORDS = ["string", "int", "float", "bool", "boolean", "str", "path", "uri", "flot", "base",
         "higher", "2h", "90s", "16Gi", "12X", "3.11", "s3://bucket/key", "main", "train", "a",
         "python {a}", "echo {b}", "{data.train}", "{}", "{{x}}", "{", ""]

keys = st.sampled_from(TOP_KEYS + ENTRY_KEYS + OTHER_KEYS) | st.text(max_size=8)
scalars = (st.none() | st.booleans() | st.integers(-10**300, 10**300)
           | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(WORDS)
           | st.text(max_size=10))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(keys, inner, max_size=5), max_leaves=25)

# Shaped like the schema (so that many documents pass it and reach the builder), each with a
# chance of being any value at all.
def shaped(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.integers(0, 19).flatmap(lambda n: values if n == 0 else strategy)


names = st.integers(0, 19).flatmap(lambda n: st.sampled_from(["bad name", "1x"]) if n == 0
                                   else st.sampled_from(["main", "train", "a", "b"]))
texts = st.sampled_from(WORDS) | st.text(max_size=10)
files = shaped(st.sampled_from(["env.yml", "data/x.csv", "requirements.lock", "ghcr.io/o/i:1"]))
numbers = shaped(st.integers(0, 100) | st.floats(0, 1))
parameter = shaped(st.sampled_from(WORDS[:9]) | st.fixed_dictionaries(
    {}, optional={"type": st.sampled_from(WORDS[:9]), "default": scalars, "description": texts}))
resources = shaped(st.fixed_dictionaries({}, optional={
    "cpu": numbers, "gpu": numbers, "memory": shaped(st.sampled_from(["16Gi", "512Mi", "2G"])),
    "timeout": shaped(st.sampled_from(["2h", "90s", "1h30m"]) | st.integers(1, 100))}))
gate = shaped(st.fixed_dictionaries({}, optional={
    "min": numbers, "max": numbers, "not_worse_than": shaped(st.just("base")),
    "tolerance": numbers, "direction": shaped(st.sampled_from(["higher", "lower"]))}))
environment = shaped(st.fixed_dictionaries({"python": shaped(st.just("3.11"))}, optional={
    "requirements": files}) | st.fixed_dictionaries({"conda": files}, optional={"lock": files})
    | st.fixed_dictionaries({"docker": shaped(st.fixed_dictionaries({"image": files}))}))
commands = (st.sampled_from(WORDS[-8:]) | st.text(max_size=20)
            | st.lists(st.sampled_from(["python", "{a}", "{b}", "{main}", "{data.a}",
                                        "{data.train}", "{{x}}", "--flag"]), max_size=4)
            .map(lambda words: " ".join(["python", *words])))
entry_point = st.fixed_dictionaries(
    {"command": shaped(commands)},
    optional={"parameters": st.none() | shaped(st.dictionaries(names, parameter, max_size=4)),
              "needs": shaped(st.lists(names, max_size=3, unique=True)),
              "data": shaped(st.lists(names, max_size=2, unique=True)),
              "environment": shaped(names), "resources": resources,
              "outputs": shaped(st.lists(files, max_size=2)), "metrics": files,
              "gates": shaped(st.dictionaries(names, gate, max_size=2)), "resorces": values})
document = st.fixed_dictionaries(
    {"entry_points": shaped(st.dictionaries(names, entry_point, min_size=1, max_size=4))},
    optional={"format": shaped(st.just(1)), "name": shaped(texts),
              "environment": shaped(names), "resources": resources,
              "environments": shaped(st.dictionaries(names, environment, max_size=3)),
              "data": shaped(st.dictionaries(names, shaped(st.fixed_dictionaries(
                  {"path": files}, optional={"rev": files})), max_size=3)),
              "python_env": files, "conda_env": files,
              "docker_env": shaped(st.fixed_dictionaries({"image": files}))})


def dump(doc: Any) -> bytes:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).encode()


@pytest.mark.slow
@fast(400)
@given(doc=document)
def test_structured_documents(here: Path, doc: dict[str, Any]) -> None:
    outcome(here, dump(doc))


@fast(100)
@given(doc=values)
def test_any_yaml_value(here: Path, doc: Any) -> None:
    outcome(here, dump(doc))


@pytest.mark.slow
def test_structured_documents_reach_both_outcomes(here: Path) -> None:
    """The strategy is not degenerate: it yields valid files, and each kind of refusal."""
    seen: set[str] = set()

    @settings(max_examples=300, deadline=None, database=None, derandomize=True)
    @given(doc=document)
    def collect(doc: dict[str, Any]) -> None:
        result = outcome(here, dump(doc))
        if isinstance(result, Spec):
            seen.add("spec")
        else:
            seen.update(m for p in result.problems for m in (
                "placeholder", "cycle", "is not one of", "no entry point named",
                "no data input named", "no environment named") if m in p.message)

    collect()
    # Schema errors, and errors only the builder finds (references, placeholders, cycles).
    assert {"spec", "is not one of"} <= seen, seen
    assert len(seen) >= 5, seen


# -- pathological files, explicitly -----------------------------------------------------------

TEN_MB = 10 * 1024 * 1024


@pytest.mark.parametrize(("content", "where"), [
    (b"[" * TEN_MB, "MLproject:1:65: "),
    (b"{a: " * (TEN_MB // 4), "MLproject:1:257: "),
    (b"entry_points: " + b"{a: " * (TEN_MB // 4), "MLproject:1:"),
    ("".join("  " * i + "a:\n" for i in range(3000)).encode(), "MLproject:65:129: "),
    (b"- " * (TEN_MB // 2), "MLproject:1:"),
], ids=["brackets", "braces", "braces-in-value", "block-mappings", "block-lists"])
def test_deep_nesting_is_refused_quickly_and_located(here: Path, content: bytes,
                                                     where: str) -> None:
    start = time.monotonic()
    result = outcome(here, content)
    elapsed = time.monotonic() - start
    assert isinstance(result, SpecError)
    (problem,) = result.problems
    assert str(problem).startswith(where)
    assert str(problem).endswith("the document nests deeper than 64 levels")
    assert elapsed < 5, f"{elapsed:.1f}s"


BILLION_LAUGHS = b"""\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
entry_points: {main: {command: echo, outputs: *i}}
"""

MERGE_BOMB = b"".join(
    [b"a0: &a0 {k0: 1, k1: 1, k2: 1, k3: 1, k4: 1, k5: 1, k6: 1, k7: 1}\n"]
    + [b"a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n"
       % ((i, i) + (i - 1,) * 10) for i in range(1, 9)]
    + [b"entry_points: {main: {<<: *a0, command: echo}}\n"])


def test_billion_laughs_is_refused(here: Path) -> None:
    start = time.monotonic()
    result = outcome(here, BILLION_LAUGHS)
    assert isinstance(result, SpecError)
    assert str(result) == "MLproject:6:8: the document expands to more than 200000 values"
    assert time.monotonic() - start < 5


def test_nested_aliases_are_refused(here: Path) -> None:
    result = outcome(here, MERGE_BOMB)
    assert isinstance(result, SpecError)
    assert "the document expands to more than 200000 values" in str(result)


def test_self_referencing_anchor(here: Path) -> None:
    result = outcome(here, b"a: &a [*a]\nentry_points: {main: {command: echo}}\n")
    assert isinstance(result, SpecError)
    assert str(result) == "MLproject:1:8: alias *a has no anchor before it"


@pytest.mark.parametrize("number", [b"9" * 4000, b"-" + b"9" * 4000, b"1.0e999999", b"-.inf",
                                    b".nan", b"0x" + b"f" * 3000, b"0o" + b"7" * 4000])
def test_big_numbers_anywhere(here: Path, number: bytes) -> None:
    for template in (b"name: %s\nentry_points: {main: {command: echo}}\n",
                     b"resources: {cpu: %s, memory: %s, gpu: %s}\n"
                     b"entry_points: {main: {command: echo}}\n",
                     b"entry_points: {main: {command: echo, parameters: {p: {default: %s}}}}\n"):
        outcome(here, template.replace(b"%s", number))


@pytest.mark.parametrize("number", [b"1" + b"0" * 309, b"0x" + b"f" * 300])
def test_huge_timeout_is_a_spec_error(here: Path, number: bytes) -> None:
    result = outcome(here, b"resources: {timeout: %s}\nentry_points: {main: {command: echo}}\n"
                     % number)
    assert isinstance(result, SpecError)


@pytest.mark.parametrize("where", [b"name: %s\n", b"resources: {gpu: %s}\n"])
def test_huge_integer_is_a_spec_error(here: Path, where: bytes) -> None:
    content = where.replace(b"%s", b"9" * 5000) + b"entry_points: {main: {command: echo}}\n"
    result = outcome(here, content)
    assert isinstance(result, SpecError)


@pytest.mark.parametrize(("content", "message"), [
    (b"", "MLproject:1:1: expected a mapping with entry_points at the top level; "
          "the file is empty"),
    (b"\xef\xbb\xbf", "MLproject:1:1: expected a mapping with entry_points at the top level; "
                      "the file is empty"),
    (b"- a\n- b\n", "MLproject:1:1: expected a mapping with entry_points at the top level; "
                    "found a list"),
    (b"entry_points: {main: {command: \"echo\x00\"}}\n",
     "MLproject:1:37: YAML syntax: character U+0000 is not allowed"),
    (b"\x00", "MLproject:1:1: YAML syntax: character U+0000 is not allowed"),
    (b"\xff\xfe\x00\x00", "MLproject:1:1: not UTF-8 text (byte 0xff)"),
    (b"entry_points:\n  main: {command: \xc3}\n", "MLproject:2:19: not UTF-8 text (byte 0xc3)"),
])
def test_odd_files(here: Path, content: bytes, message: str) -> None:
    result = outcome(here, content)
    assert isinstance(result, SpecError)
    assert str(result) == message


def test_bom_is_fine_and_an_escaped_nul_is_refused_located(here: Path) -> None:
    result = outcome(here, b'\xef\xbb\xbfentry_points: {main: {command: "echo x"}}\n')
    assert isinstance(result, Spec)
    assert result.entry_points["main"].command == "echo x"
    # YAML can spell a NUL ("\0"), but no process can receive one in its command line.
    refused = outcome(here, b'entry_points: {main: {command: "echo \\0 x"}}\n')
    assert isinstance(refused, SpecError)
    assert "entry_points.main.command: the command contains a NUL byte" in str(refused)


@pytest.mark.parametrize("content", ["[" * 100_000, "{a: " * 100_000, "a: [" * 1000],
                         ids=["brackets", "braces", "in-block"])
def test_depth_limit_is_ours_in_the_scanner_too(content: str) -> None:
    # The fallback taken when PyYAML's own read-ahead limit fires first (6.0.4 and later):
    # exercised directly, so it is tested whatever PyYAML version is installed.
    from mlproject.spec import yamlpos

    with pytest.raises(yamlpos.YamlProblem) as caught:
        yamlpos._Builder(content, yamlpos._GuardedLoader).run()
    assert caught.value.message == "the document nests deeper than 64 levels"
    with pytest.raises(yamlpos.YamlProblem) as public:
        yamlpos.parse(content)  # whichever loader answers first, the same place and words
    assert (caught.value.line, caught.value.col) == (public.value.line, public.value.col)
    assert public.value.message == caught.value.message
