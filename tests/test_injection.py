"""No value runs as a command, whatever shell quoting its placeholder is in.

Each placeholder is quoted for the context the lexer (spec/shell.py) finds it in; the proof is
bash itself: generated templates, hostile values, the rendered command run with `bash -c`, no
marker file, and every value received verbatim. Contexts no quoting can make safe are refused
when the file is loaded, located, with a way to write it."""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from mlproject.spec import shell, template

Cli = Callable[..., Any]
Expect = Callable[[Mapping[str, str]], str]
Piece = tuple[str, Expect]  # template text (braces doubled), what bash makes of it
Statement = tuple[str, Callable[[Mapping[str, str]], list[str]]]

MARK = "@MARK@"  # replaced by the marker's path: a value that ran would create it
FRAGMENTS = [
    "$(touch @MARK@)", "`touch @MARK@`", "; touch @MARK@", "&& touch @MARK@", "| touch @MARK@",
    "'; touch @MARK@; '", '"; touch @MARK@; "', "\ntouch @MARK@\n", "'$(touch @MARK@)'",
    "\"$(touch @MARK@)\"", "\\", "\\'", '\\"', "'\\''", "$", "`", "'", '"', "!", "!!", "*", "?",
    "~", "~root", "$HOME", "${HOME}", "$((1+1))", "$'\\x27'", "\\$(touch @MARK@)", "(", ")",
    "{", "}", "{a,b}", "#", "# c", "&", "|", "<", ">", ">@MARK@", "<<EOF", "\t", "\r", "\n",
    " ", "=", "a=b", "--flag", "-n", "-e", "%s", "%b", "\\n", "\x01", "\x7f", "é", "日本語", "🚀",
    "\u200b", "\u2028",
]
TEXT = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"), max_size=8)
VALUES = st.lists(st.one_of(st.sampled_from(FRAGMENTS), TEXT), max_size=6).map("".join)
NAMES = ("a", "b", "data.x")

UNQUOTED_LITERAL = "abcXYZ019_-.,:/@%+="  # stand for themselves outside quotes
DOUBLE_LITERAL = "ab Z09 ;&|<>()*?~#!'{}=\t\n"  # ... between double quotes
SINGLE_LITERAL = "ab Z09 ;&|<>()*?~#!\"{}$`\\=\t\n"  # ... between single quotes
ESCAPED = ";&|<>()$`\"'*?~ #\\{}"  # after a backslash, outside quotes


def braces(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def literal(alphabet: str) -> st.SearchStrategy[Piece]:
    return st.text(st.sampled_from(alphabet), min_size=1, max_size=4).map(
        lambda s: (braces(s), lambda v, s=s: s))


def placeholder() -> st.SearchStrategy[Piece]:
    return st.sampled_from(NAMES).map(lambda n: (f"{{{n}}}", lambda v, n=n: v[n]))


def joined(pieces: list[Piece], before: str = "", after: str = "") -> Piece:
    text = before + "".join(p[0] for p in pieces) + after
    return text, lambda v: "".join(p[1](v) for p in pieces)


@st.composite
def substitution(draw: st.DrawFn, depth: int) -> Piece:
    """`$(printf '%s' WORDS)`: a fresh unquoted context; bash drops trailing newlines."""
    words = draw(st.lists(word(depth + 1), min_size=1, max_size=3))
    text = "$(printf '%s' " + " ".join(w[0] for w in words) + ")"
    return text, lambda v: "".join(w[1](v) for w in words).rstrip("\n")


@st.composite
def double(draw: st.DrawFn, depth: int) -> Piece:
    kinds = [placeholder(), literal(DOUBLE_LITERAL),
             st.sampled_from(["\\$", '\\"', "\\\\", "\\`", "\\a"]).map(
                 lambda s: (s, lambda v, s=s: s[1] if s != "\\a" else s))]
    if depth < 3:
        kinds.append(substitution(depth))
    return joined(draw(st.lists(st.one_of(kinds), max_size=4)), '"', '"')


@st.composite
def single(draw: st.DrawFn) -> Piece:
    return joined(draw(st.lists(st.one_of(placeholder(), literal(SINGLE_LITERAL)), max_size=3)),
                  "'", "'")


@st.composite
def word(draw: st.DrawFn, depth: int = 0, assigned: bool = False) -> Piece:
    """One shell word: placeholders and literal text, adjacent, in every quoting."""
    kinds = [placeholder(), literal(UNQUOTED_LITERAL), double(depth), single(),
             st.sampled_from(ESCAPED).map(lambda c: ("\\" + braces(c), lambda v, c=c: c)),
             st.sampled_from(["$'\\t'", "$'x'", '""', "''"]).map(
                 lambda s: (s, lambda v, s=s: {"$'\\t'": "\t", "$'x'": "x"}.get(s, "")))]
    if assigned and depth < 3:  # no word splitting in an assignment: $(...) may be unquoted
        kinds.append(substitution(depth))
    pieces = draw(st.lists(st.one_of(kinds), min_size=1, max_size=4))
    if not any("{" in p[0].replace("{{", "") for p in pieces):
        pieces.append(draw(placeholder()))
    return joined(pieces)


NOISE = [  # literal-only text around the placeholders that the lexer must follow
    ("# it's a \"comment\" with {{x}} and $( `\n", []),
    ("cat >/dev/null <<'EOF'\n$(touch @MARK@) ' \" {{x}}\nEOF\n", []),
    ("cat >/dev/null <<-EOF\n\tit's \\\n\tEOF\nEOF\n", []),
    ("x=$(( 1 + 2 )); y=${{x:-'}}'}}; : \"$y\" `true`;", []),
    ("case $x in 3) : ;; esac;", []),
    (": <<< \"it's\";", []),
]


@st.composite
def statement(draw: st.DrawFn) -> Statement:
    kind = draw(st.sampled_from(["printf", "assign", "noise"]))
    if kind == "noise":
        text, _ = draw(st.sampled_from(NOISE))
        return text, lambda v: []
    if kind == "assign":
        value = draw(word(assigned=True))
        return (f"v={value[0]}; printf '%s\\0' \"$v\"\n", lambda v: [value[1](v)])
    words = draw(st.lists(word(), min_size=1, max_size=3))
    return ("printf '%s\\0' " + " ".join(w[0] for w in words) + ";",
            lambda v: [w[1](v) for w in words])


def run_bash(command: str, cwd: Path) -> list[str]:
    done = subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return [w.decode("utf-8", "surrogateescape") for w in done.stdout.split(b"\0")[:-1]]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("injection")


@settings(max_examples=400, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(statements=st.lists(statement(), min_size=1, max_size=4),
       raw=st.fixed_dictionaries({n: VALUES for n in NAMES}))
@example(statements=[('echo "dq={a}" \'sq={b}\' {data.x}', lambda v: [])],
         raw={"a": "$(touch @MARK@)", "b": "'; touch @MARK@; '", "data.x": "`touch @MARK@`"})
@pytest.mark.slow
def test_no_value_runs_and_each_arrives_verbatim(scratch: Path, statements: list[Statement],
                                                 raw: dict[str, str]) -> None:
    marker = scratch / "marker"
    marker.unlink(missing_ok=True)  # each example on its own, so that a failure replays
    values = {k: v.replace(MARK, str(marker)) for k, v in raw.items()}
    text = "".join(s[0] for s in statements).replace(MARK, str(marker))
    parts = template.parse(text)
    analysis = shell.analyze(parts)
    assert analysis.refused == (), (text, analysis)
    command = template.render(template.placed(parts, analysis), values)
    out = run_bash(command, scratch)
    assert not marker.exists(), command
    if "echo" not in text:
        assert out == [x for s in statements for x in s[1](values)], command


TOKENS = ["{a}", "{b}", "'", '"', "$", "(", ")", "`", "\\", "#", ";", "<", ">", "|", "&", " ",
          "\n", "\t", "x", "=", "[", "]", "{{", "}}", "-", "$(", "$((", "))", "${{", "<<", "<<-",
          "E", "-eq", "-v", "[[", "]]", "case", "in", "esac", ";;", "!", "*", "~", ":", "$'", "\\\n"]


@settings(max_examples=400, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.filter_too_much])
@given(tokens=st.lists(st.sampled_from(TOKENS), max_size=24).map(lambda t: [*t, "{a}"])
       .flatmap(st.permutations), raw=st.fixed_dictionaries({"a": VALUES, "b": VALUES}))
@pytest.mark.slow
def test_whatever_text_the_lexer_accepts_runs_no_value(scratch: Path, tokens: list[str],
                                                       raw: dict[str, str]) -> None:
    """Arbitrary shell-like text around placeholders: what the lexer does not refuse, bash runs
    without running a value (an attacker's view of the lexer, beyond the grammar above)."""
    try:
        parts = template.parse("".join(tokens))
    except template.TemplateError:
        return
    analysis = shell.analyze(parts)
    if analysis.refused:
        return
    marker = scratch / "marker"
    marker.unlink(missing_ok=True)
    values = {k: v.replace(MARK, str(marker)) for k, v in raw.items()}
    command = template.render(template.placed(parts, analysis), values)
    cwd = Path(tempfile.mkdtemp(dir=scratch))  # redirections write here
    try:
        subprocess.run(["bash", "-c", command], cwd=cwd, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=10, check=False)
    except subprocess.TimeoutExpired:
        pass
    assert not marker.exists(), command


# -- contexts that no quoting makes safe: refused ---------------------------------------------

REFUSED = {
    "backticks": ("echo `echo {x}`", "{x} is inside backticks, where no quoting protects a value: "
                  "move {x} out of the backticks: use $(...)"),
    "backticks-in-quotes": ('echo "`echo {x}`"', None),
    "heredoc": ("cat <<EOF\n{x}\nEOF\n", "{x} is in a here-document, which a value with a newline "
                "could end: pass the value as an argument or through a file instead"),
    "heredoc-quoted": ("cat <<'EOF'\nline {x}\nEOF\n", None),
    "heredoc-dash": ("cat <<-EOF\n\t{x}\n\tEOF\n", None),
    "heredoc-after-newline-in-substitution": ('echo "$(cat <<E\n{x}\nE\n)"', None),
    "delimiter": ("cat <<{x}\nhi\n", "{x} is in a here-document delimiter: write a fixed delimiter"),
    "ansi-c": ("echo $'{x}'", "{x} is inside $'...' quotes, where escapes in a value are "
               "interpreted: write the placeholder outside the quotes"),
    "locale": ('echo $"{x}"', "{x} is inside $\"...\" quotes: write the placeholder outside the "
               "quotes or in \"...\""),
    "expansion": ("echo ${{HOME:-{x}}}", "{x} is inside a ${...} parameter expansion, where a "
                  "value may be evaluated: write the placeholder outside it"),
    "expansion-in-quotes": ('echo "${{HOME:-{x}}}"', None),
    "comment": ("echo hi # {x}", "{x} is in a shell comment, which a newline in its value would "
                "end: move it out of the comment (or write {{...}} for literal braces)"),
    "comment-after-operator": ("true;# {x}", None),
    "comment-in-substitution": ('echo "$(echo a # {x}\n)"', None),
    "arithmetic": ("echo $((1 + {x}))", "{x} is inside an arithmetic expression, which evaluates "
                   "a value as code: pass it as an argument of the program instead"),
    "arithmetic-command": ("(( {x} > 1 ))", None),
    "old-arithmetic": ("echo $[{x}]", None),
    "arithmetic-test": ("[[ {x} -gt 1 ]]", "{x} is in a [[ ... ]] test with an arithmetic "
                        "comparison (or -v), which evaluates a value as code: use [ ... ] (test) "
                        "for numbers"),
    "variable-test": ("[[ -v {x} ]]", None),
    "quoted-arithmetic-test": ('[[ 1 -eq "$(echo \'{x}\')" ]]', None),
    "subscript": ("a[{x}]=1", "{x} is in the subscript of an array assignment, which is evaluated "
                  "as arithmetic: write the placeholder outside the brackets"),
    "subscript-in-a-list": ("a=([{x}]=1)", None),
    "subscript-quoted": ('a["{x}"]+=1', None),
    "dollar": ("echo ${x}", "a '$' right before {x} would make its value a shell expansion: "
               "remove it (write '\\$' for a literal dollar sign)"),
    "dollar-in-quotes": ('echo "${x}"', None),
    "backslash": ("echo \\{x}", "a backslash right before {x} would escape the quoting of its "
                  "value: remove it"),
    "backslash-in-quotes": ('echo "\\{x}"', None),
    "unterminated": ('echo "{x}', "{x} is in a double-quoted string that is never closed: close it"),
    "after-quoted-backticks": ('echo `echo "a"` {x}', "{x} comes after backticks holding quotes, "
                               "which the lexer cannot follow: use $(...) instead of backticks"),
    "after-case-in-substitution": ('echo "$(case a in a) echo;; esac)" {x}', "{x} comes after "
                                   "`case` inside $(...), whose patterns the lexer cannot "
                                   "follow: write the case statement outside the substitution"),
}


def write(root: Path, command: str) -> Path:
    root.mkdir(exist_ok=True)
    (root / "MLproject").write_text(yaml.safe_dump({"entry_points": {"main": {
        "parameters": {"x": "string"}, "command": command}}}))
    return root


@pytest.mark.parametrize("name", REFUSED)
def test_refused_context_is_a_located_error_with_a_way_out(cli: Cli, tmp_path: Path,
                                                           name: str) -> None:
    command, message = REFUSED[name]
    project = write(tmp_path / "project", command)
    for strict in ((), ("--strict",)):
        result = cli("validate", str(project), *strict, cwd=tmp_path)
        assert (result.code, result.out) == (2, "")
        lines = result.err.splitlines()
        assert len(lines) == 1, result.err
        assert lines[0].startswith("project/MLproject:3:14: entry_points.main.command: ")
        if message:
            assert lines[0] == f"project/MLproject:3:14: entry_points.main.command: {message}"
    assert cli("plan", str(project), "-P", "x=1", cwd=tmp_path).code == 2


REFUSED_SHAPES = [
    "`{x}`", "`a {x} b`", "\"`{x}`\"", "$'{x}'", "$\"{x}\"", "${{v:-{x}}}", "${{v:+\"{x}\"}}",
    "$(({x}))", "$((1+$(echo {x})))", "$[{x}]", "${x}", "\"${x}\"", "\\{x}", "\"\\{x}\"",
]


@settings(max_examples=150, deadline=None, database=None)
@given(before=st.lists(word(), max_size=2), after=st.lists(word(), max_size=2),
       shape=st.sampled_from(REFUSED_SHAPES), adjacent=st.sampled_from(["", "a", "'q'", '"d"']))
@pytest.mark.slow
def test_refused_shapes_are_refused_wherever_they_stand(before: list[Piece], after: list[Piece],
                                                        shape: str, adjacent: str) -> None:
    words = [w[0] for w in before] + [adjacent + shape + adjacent] + [w[0] for w in after]
    parts = template.parse("printf '%s\\0' " + " ".join(words))
    names = [p.name for p in parts if isinstance(p, template.Placeholder)]
    analysis = shell.analyze(parts)
    assert {names[i] for i, _ in analysis.refused} == {"x"}


@pytest.mark.parametrize("layout", ["comment", "heredoc", "heredoc-dash"])
@given(value=VALUES)
@settings(max_examples=30, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_what_bash_treats_as_a_comment_or_body_the_lexer_does_too(layout: str, value: str,
                                                                  tmp_path: Path) -> None:
    """A placeholder right after a comment or a here-document is unquoted again, and safe."""
    head = {"comment": "true # it's \"odd\" $( `\n", "heredoc": "cat >/dev/null <<E\n'\n\"\nE\n",
            "heredoc-dash": "cat >/dev/null <<-'E'\n\t$(\n\tE\n"}[layout]
    parts = template.parse(head + "printf '%s\\0' {a} \"{a}\" '{a}'")
    analysis = shell.analyze(parts)
    assert analysis.contexts == ("unquoted", "double", "single")
    marker = tmp_path / "marker"
    value = value.replace(MARK, str(marker))
    out = run_bash(template.render(template.placed(parts, analysis), {"a": value}), tmp_path)
    assert out == [value] * 3
    assert not marker.exists()


# -- through the CLI: the issue's example, undeclared values, the command's own text ----------


def echo_project(root: Path, command: str, parameters: dict[str, Any] | None = None) -> Path:
    root.mkdir(exist_ok=True)
    (root / "MLproject").write_text(yaml.safe_dump({"entry_points": {"main": {
        "parameters": parameters or {"msg": "string"}, "command": command}}}))
    return root


def plan_command(cli: Cli, project: Path, *params: str) -> str:
    args = [a for p in params for a in ("-P", p)]
    result = cli("plan", str(project), "--json", "--env", "local", *args, cwd=project.parent)
    assert result.code == 0, result.err
    return str(json.loads(result.out)["steps"][-1]["command"])


def test_the_issues_example_runs_nothing(cli: Cli, tmp_path: Path) -> None:
    marker = tmp_path / "x"
    out = tmp_path / "out.json"
    script = f"import sys, json; json.dump(sys.argv[1:], open({str(out)!r}, 'w'))"
    project = echo_project(tmp_path / "p", f"{sys.executable} -c \"{script}\" \"dq={{msg}}\" "
                                           f"'sq={{msg}}' {{msg}}")
    assert cli("validate", str(project), "--strict", cwd=tmp_path).code == 0
    value = f"$(touch {marker})'\"`touch {marker}`\\"
    result = cli("run", str(project), "--env", "local", "-P", f"msg={value}", cwd=tmp_path)
    assert result.code == 0, result.err
    assert not marker.exists()
    assert json.loads(out.read_text()) == [f"dq={value}", f"sq={value}", value]


def test_a_value_needing_no_quotes_is_rendered_as_before(cli: Cli, tmp_path: Path) -> None:
    project = echo_project(tmp_path / "p", "echo \"dq={msg}\" 'sq={msg}' {msg}")
    assert plan_command(cli, project, "msg=plain-1.5") == "echo \"dq=plain-1.5\" 'sq=plain-1.5' plain-1.5"


TAILS = ["", "\n", "  \n\n", " \\\n", " \\\n\n", "\t"]


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tail=st.sampled_from(TAILS), value=VALUES, extra=VALUES,
       name=st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,6}", fullmatch=True))
@pytest.mark.slow
def test_undeclared_values_are_arguments_of_the_command(cli: Cli, tmp_path: Path, tail: str,
                                                        value: str, extra: str, name: str) -> None:
    """Appended as `--name value`, also after a final newline (not a command of its own)."""
    if name == "msg":
        name = "msg2"
    marker = tmp_path / "marker"
    value, extra = value.replace(MARK, str(marker)), extra.replace(MARK, str(marker))
    project = echo_project(tmp_path / "p", "# it's\nprintf '%s\\0' \"{msg}\"" + tail)
    command = plan_command(cli, project, f"msg={value}", f"{name}={extra}")
    assert run_bash(command, tmp_path) == [value, f"--{name}", extra]
    assert not marker.exists()


@pytest.mark.parametrize(("tail", "why"), [
    (" # note", "a comment"), (" # note\n", "a comment"), (" # note\n\n", "a comment"), (' "$(case a in a) echo;; esac)"', "text the lexer cannot follow"),
    ("\ncat <<E\nx\nE\n", "a here-document"), (" \\", "a backslash"),
])
def test_undeclared_values_are_refused_where_they_would_not_be_arguments(
        cli: Cli, tmp_path: Path, tail: str, why: str) -> None:
    project = echo_project(tmp_path / "p", "echo {msg}" + tail)
    result = cli("plan", str(project), "--env", "local", "-P", "msg=1", "-P", "extra=2",
                 cwd=tmp_path)
    assert (result.code, result.out) == (2, "")
    assert result.err.splitlines()[-1] == (
        f"mlproject: error: -P extra: entry point 'main' declares no such parameter, and its "
        f"command ends inside {why}, where an appended `--name value` would not be arguments: "
        "declare it")


@pytest.mark.parametrize(("given", "message"), [
    ("msg=a\0b", "parameter msg (string): 'a\\x00b': contains a NUL byte, which no program "
                 "can receive"),
    ("msg=a\udcffb", "parameter msg (string): 'a\\udcffb': is not UTF-8 text (at character 2: "
                     "byte 0xff)"),
    ("other=\0", "-P other: '\\x00': contains a NUL byte, which no program can receive"),
    ("other=\udce9t\udce9", "-P other: '\\udce9t\\udce9': is not UTF-8 text (at character 1: "
                            "byte 0xe9)"),
])
def test_values_no_process_can_receive_are_refused(cli: Cli, tmp_path: Path, given: str,
                                                   message: str) -> None:
    project = echo_project(tmp_path / "p", "echo {msg}")
    for verb in ("plan", "run"):
        args = ("-P", "msg=x") if not given.startswith("msg=") else ()
        result = cli(verb, str(project), "--env", "local", *args, "-P", given, cwd=tmp_path)
        assert (result.code, result.out, result.err) == (2, "", f"mlproject: error: {message}\n")


def test_non_utf8_value_from_a_real_argv_is_refused(tmp_path: Path) -> None:
    project = echo_project(tmp_path / "p", "echo {msg}")
    done = subprocess.run([sys.executable, "-m", "mlproject.runner", "plan", str(project), "-P",
                           b"msg=caf\xe9"], capture_output=True, check=False)
    assert (done.returncode, done.stdout) == (2, b"")
    assert done.stderr == (b"mlproject: error: parameter msg (string): 'caf\\udce9': is not "
                           b"UTF-8 text (at character 4: byte 0xe9)\n")


@pytest.mark.parametrize(("yaml_text", "where", "message"), [
    ('command: "echo \\0 {msg}"', "4:14", "the command contains a NUL byte, which no program "
                                          "can receive"),
    ('command: "echo {msg}\\n\\0"', "4:14", "the command contains a NUL byte, which no "
                                             "program can receive"),
])
def test_a_command_no_process_can_receive_is_refused(cli: Cli, tmp_path: Path, yaml_text: str,
                                                     where: str, message: str) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "MLproject").write_text("entry_points:\n  main:\n    parameters: {msg: string}\n"
                                       f"    {yaml_text}\n")
    result = cli("validate", str(project), cwd=tmp_path)
    assert (result.code, result.out) == (2, "")
    assert result.err == f"p/MLproject:{where}: entry_points.main.command: {message}\n"


def test_a_default_no_process_can_receive_is_refused(cli: Cli, tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "MLproject").write_text("entry_points:\n  main:\n    parameters:\n"
                                       '      msg: {type: string, default: "a\\0"}\n'
                                       "    command: echo {msg}\n")
    result = cli("validate", str(project), cwd=tmp_path)
    assert (result.code, result.out) == (2, "")
    assert result.err == ("p/MLproject:4:36: entry_points.main.parameters.msg.default: default "
                          "'a\\x00' contains a NUL byte, which no program can receive\n")
