"""`mlproject report`: the head lock against the base lock, in real Git repositories: the
markdown a reviewer reads (pinned whole), JSON, no baseline, unknown revisions, hostile names
rendered by a real markdown parser, the comment limit, PNG pictures, and `metrics: {file, series}`."""
from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mlproject.runner.gitops import diff, report
from mlproject.runner.gitops.lockfile import Lock, LockEntry

from tests.conftest import Result, git, git_init, write_project

MLPROJECT = """\
name: demo
entry_points:
  prepare:
    command: "python -c pass"
    metrics: prepared.json
  train:
    parameters:
      lr: {type: float, default: 0.1}
    command: "python -c pass {lr}"
    metrics: {file: metrics.json, series: history.csv}
    gates:
      acc: {min: 0.8, not_worse_than: base, tolerance: 0.01}
      loss: {max: 0.5}
"""


def entry(fingerprint: str, *, metrics: dict[str, float], parameters: dict[str, str] | None = None,
          data: dict[str, dict[str, Any]] | None = None,
          packages: dict[str, str] | None = None, key: str = "k1") -> LockEntry:
    return LockEntry(
        fingerprint=fingerprint, parameters=parameters or {}, command="python -c pass",
        code="c0de", environment={"name": "train-env", "kind": "python", "key": key,
                                  "input": key, "digest": key, "packages": packages or {}},
        data=data or {}, outputs={}, metrics=metrics)


def pin(md5: str, size: int, nfiles: int) -> dict[str, Any]:
    return {"path": "data/raw", "md5": md5, "size": size, "nfiles": nfiles, "repo": None,
            "rev": None, "sha": None}


BASE = Lock({
    "prepare": entry("f-prep", metrics={"rows": 1000}),
    "train": entry("f-train-1", metrics={"acc": 0.9, "loss": 0.4, "f1": 0.5, "old": 1.0},
                   parameters={"lr": "0.1", "epochs": "10"},
                   data={"raw": pin("a" * 32 + ".dir", 2048, 10)},
                   packages={"numpy": "1.26.4", "torch": "2.3.0", "six": "1.16.0",
                             "weird": "cuda-a"}),
})
HEAD = Lock({
    "prepare": entry("f-prep", metrics={"rows": 1000}),
    "train": entry("f-train-2", metrics={"acc": 0.925, "loss": 0.45, "f1": 0.5, "new": 3.0},
                   parameters={"lr": "0.05", "epochs": "10", "seed": "7"},
                   data={"raw": pin("b" * 32 + ".dir", 3072, 12)},
                   packages={"numpy": "2.0.1", "torch": "2.2.0", "rich": "13.0",
                             "weird": "cuda-b"}, key="k2"),
})


def repo(tmp_path: Path, base: Lock | None, head: Lock | None,
         files: dict[str, str] | None = None, head_files: dict[str, str] | None = None) -> Path:
    """A Git repository whose `main` holds `base` (no lock when None) and whose working tree
    holds `head` (uncommitted)."""
    root = write_project(tmp_path / "proj", {"MLproject": MLPROJECT, ".gitignore": ".mlproject/\n",
                                             **(files or {})})
    if base is not None:
        (root / "mlproject.lock").write_text(base.to_text())
    git_init(root)
    if head is not None:
        (root / "mlproject.lock").write_text(head.to_text())
    for name, text in (head_files or {}).items():
        (root / name).write_text(text)
    return root


def test_the_report_compares_every_part_of_the_head_with_the_base(
        tmp_path: Path, cli: Callable[..., Result]) -> None:
    root = repo(tmp_path, BASE, HEAD)
    done = cli("report", str(root), "--base", "main")
    assert (done.code, done.err) == (0, "")
    assert done.out == """\
<!-- mlproject report -->
## mlproject report

Base `main` · head the working tree

✅ **Gates:** 3 passed, 0 failed

| Entry point | Gates | Run | Metrics changed | Parameters | Data | Environment |
|---|---|---|--:|--:|--:|---|
| `prepare` | — | not re-run (as the base) | 0 | 0 | 0 | — |
| `train` | ✅ | re-ran (no local run record) | 4 | 2 | 1 | 5 packages |

### • `prepare`

not re-run (as the base)

| Metric | Base | Head | Δ | Δ % | Gate |
|---|--:|--:|--:|--:|---|
| `rows` | 1000 | 1000 | 0 | +0.00 % | — |

### ✅ `train`

re-ran (no local run record)

| Metric | Base | Head | Δ | Δ % | Gate |
|---|--:|--:|--:|--:|---|
| `acc` | 0.9 | 0.925 | +0.025 | +2.78 % | ✅ ≥ 0.8 (min)<br>✅ ≥ 0.89 (not worse than base 0.9) |
| `loss` | 0.4 | 0.45 | +0.05 | +12.50 % | ✅ ≤ 0.5 (max) |
| `new` | — | 3 | — | — | — |
| `old` | 1 | — | — | — | — |
| `f1` | 0.5 | 0.5 | 0 | +0.00 % | — |

```mermaid
xychart-beta
    title "train: base (bars) vs head (line)"
    x-axis ["acc", "loss"]
    bar [0.9, 0.4]
    line [0.925, 0.45]
```

**Parameters**

| Parameter | Base | Head |
|---|---|---|
| `lr` | `0.1` | `0.05` |
| `seed` | — | `7` |

**Data**

| Data | Path | MD5 | Size Δ | Files Δ |
|---|---|---|--:|--:|
| `raw` | `data/raw` | `aaaaaaaaaaaa…` → `bbbbbbbbbbbb…` | +1.0 KiB | +2 |

**Environment** `train-env`: key `k1` → `k2`

| Package | Base | Head | Change |
|---|---|---|---|
| `numpy` | `1.26.4` | `2.0.1` | upgraded |
| `rich` | — | `13.0` | added |
| `six` | `1.16.0` | — | removed |
| `torch` | `2.3.0` | `2.2.0` | downgraded |
| `weird` | `cuda-a` | `cuda-b` | changed |

"""


def test_json_holds_every_number(tmp_path: Path, cli: Callable[..., Result]) -> None:
    root = repo(tmp_path, BASE, HEAD)
    done = cli("report", str(root), "--base", "main", "--format", "json")
    assert done.code == 0, done.err
    data = json.loads(done.out)
    assert data["format"] == "mlproject.report/1"
    assert data["base"] == {"ref": "main", "lock": True, "note": None}
    assert data["gates"] == {"passed": 3, "failed": 0}
    train = data["entry_points"][1]
    assert (train["entry_point"], train["change"], train["reran"]) == ("train", "changed", True)
    acc = next(m for m in train["metrics"] if m["name"] == "acc")
    assert acc["base"] == 0.9 and acc["head"] == 0.925
    assert acc["delta"] == pytest.approx(0.025) and acc["relative"] == pytest.approx(0.025 / 0.9)
    assert [g["rule"] for g in acc["gates"]] == ["min", "not_worse_than"]
    assert train["data"][0]["size_delta"] == 1024 and train["data"][0]["nfiles_delta"] == 2
    assert [(p["name"], p["change"]) for p in train["environment"]["packages"]] == [
        ("numpy", "upgraded"), ("rich", "added"), ("six", "removed"), ("torch", "downgraded"),
        ("weird", "changed")]
    out = root / "out" / "report.json"
    again = cli("report", str(root), "--base", "main", "--format", "json", "-o", str(out))
    assert (again.code, again.out) == (0, "")
    assert json.loads(out.read_text()) == data


def test_a_first_pull_request_has_no_baseline(tmp_path: Path, cli: Callable[..., Result]) -> None:
    root = repo(tmp_path, None, HEAD)
    done = cli("report", str(root), "--base", "main")
    assert done.code == 0, done.err
    assert "> **No baseline**: there is no mlproject.lock at main (a first pull request?). " \
           "Metrics are shown without a comparison.\n" in done.out
    assert "Base `main` (no `mlproject.lock` there) · head the working tree\n" in done.out
    assert "| `acc` | — | 0.925 | — | — | ✅ ≥ 0.8 (min)<br>✅ no baseline (not_worse_than) |\n" \
        in done.out
    assert '    title "train: head (no baseline)"\n    x-axis ["acc", "loss"]\n' \
           "    line [0.925, 0.45]\n```\n" in done.out


def test_no_base_found_says_which_names_were_tried(tmp_path: Path, cli: Callable[..., Result],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    root = repo(tmp_path, BASE, HEAD)
    git(root, "branch", "-m", "main", "work")
    monkeypatch.delenv("GITHUB_BASE_REF", raising=False)
    done = cli("report", str(root))
    assert done.code == 0, done.err
    assert "> **No baseline**: no base to compare with (tried origin/main, main, origin/master, " \
           "master): name one with --base REF. " in done.out


def test_an_unknown_revision_exits_2_naming_it(tmp_path: Path, cli: Callable[..., Result]) -> None:
    root = repo(tmp_path, BASE, HEAD)
    for flag in ("--base", "--head"):
        done = cli("report", str(root), flag, "no-such-branch")
        assert (done.code, done.out) == (2, "")
        assert done.err == ("mlproject: error: unknown revision 'no-such-branch': Git knows no "
                            f"commit of that name in {root} (fetch it first? `git fetch origin "
                            "no-such-branch`)\n")


def test_no_lock_at_the_head_exits_2(tmp_path: Path, cli: Callable[..., Result]) -> None:
    root = repo(tmp_path, None, None)
    done = cli("report", str(root), "--base", "main")
    assert (done.code, done.out) == (2, "")
    assert done.err == (f"mlproject: error: there is no mlproject.lock in {root}: run the "
                        "pipeline (`mlproject run`) to write it, then report\n")
    at = cli("report", str(root), "--base", "main", "--head", "main")
    assert at.err == ("mlproject: error: there is no mlproject.lock at main: nothing to report "
                      "(run the pipeline and commit the lock there)\n")


def test_head_at_a_revision_is_read_from_git(tmp_path: Path, cli: Callable[..., Result]) -> None:
    root = repo(tmp_path, BASE, HEAD)
    git(root, "commit", "-qam", "head")
    (root / "mlproject.lock").write_text("not a lock")  # the working tree is not read
    done = cli("report", str(root), "--base", "main~1", "--head", "main", "--format", "json")
    assert done.code == 0, done.err
    assert json.loads(done.out)["head"] == {"ref": "main"}
    assert json.loads(done.out)["entry_points"][1]["head_fingerprint"] == "f-train-2"


def test_a_failed_gate_leads_the_report(tmp_path: Path, cli: Callable[..., Result]) -> None:
    worse = Lock({**HEAD.entries, "train": entry("f-train-3", metrics={"acc": 0.7, "loss": 0.4})})
    root = repo(tmp_path, BASE, worse)
    done = cli("report", str(root), "--base", "main")
    assert done.code == 0  # `mlproject gate` decides; the report reports
    assert ("❌ **Gates:** 1 passed, 2 failed\n\n"
            "- ❌ `train` `acc`: head 0.7, needs ≥ 0.8 (min)\n"
            "- ❌ `train` `acc`: head 0.7, needs ≥ 0.89 (not worse than base 0.9)\n\n") in done.out
    assert "| `train` | ❌ 2 | re-ran (no local run record) |" in done.out
    assert "### ❌ `train`\n" in done.out


HOSTILE = ["a|b", "back`tick", "``", "<script>alert(1)</script>", "line\nbreak\r", "@org/team",
           "[click](https://evil.example)", "**bold** _it_", "tab\there", "\\|", "<!--", "x" * 300]


def _table_rows(html: str, first: str) -> list[list[str]]:
    """The cells of the table whose header starts with `first`, as rendered HTML."""
    import re

    tables = re.findall(r"<table>(.*?)</table>", html, re.S)
    table = next(t for t in tables if f"<th>{first}</th>" in t or f'">{first}</th>' in t)
    body = re.search(r"<tbody>(.*?)</tbody>", table, re.S)
    assert body is not None
    return [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
            for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)]


def test_what_users_control_cannot_break_the_table_or_inject_markup(
        tmp_path: Path, cli: Callable[..., Result]) -> None:
    """Rendered by a real CommonMark parser with GFM tables: every hostile name lands whole in
    its own cell, as a code span, and nothing outside code spans is markup from a user."""
    markdown_it = pytest.importorskip("markdown_it")
    import html as htmllib

    metrics = {name: float(i) for i, name in enumerate(HOSTILE)}
    params = {f"p{i}": name for i, name in enumerate(HOSTILE)}
    base = Lock({"train": entry("f1", metrics={"acc": 0.9, "loss": 0.1})})
    head = Lock({"train": entry("f2", metrics={"acc": 0.9, "loss": 0.1, **metrics},
                                parameters=params)})
    root = repo(tmp_path, base, head)
    done = cli("report", str(root), "--base", "main")
    assert done.code == 0, done.err
    rendered = markdown_it.MarkdownIt("commonmark").enable("table").render(done.out)
    rows = _table_rows(rendered, "Metric")
    assert all(len(row) == 6 for row in rows)
    shown = []
    for row in rows:
        assert row[0].startswith("<code>") and row[0].endswith("</code>"), row[0]
        shown.append(htmllib.unescape(row[0][len("<code>"):-len("</code>")]))
    expected = [name if len(name) <= 120 else name[:120] + "…" for name in HOSTILE]
    expected = [n.replace("\n", "\\n").replace("\r", "\\x0d").replace("\t", "\\x09")
                for n in expected]
    assert sorted(shown) == sorted(["acc", "loss", *expected])
    params_rows = _table_rows(rendered, "Parameter")
    assert len(params_rows) == len(HOSTILE) and all(len(row) == 3 for row in params_rows)
    outside = rendered
    import re

    outside = re.sub(r"<code>.*?</code>", "", outside, flags=re.S)
    assert "<script" not in outside and "<a " not in outside and "<em>" not in outside
    assert "<strong>bold" not in outside
    assert "@org" not in outside and "<!--" not in outside.replace("<!-- mlproject report -->", "")


def test_a_chart_label_cannot_end_its_quotes_or_the_fence() -> None:
    import re

    from mlproject.runner.gitops.gates import Verdict

    names = [*HOSTILE, 'quote"d', "```", "1e-07"]
    head = Lock({"train": entry("f2", metrics={n: 1e-7 for n in names})})
    base = Lock({"train": entry("f1", metrics={n: 2.5e20 for n in names})})
    verdicts = [Verdict("train", n, 1e-7, 0.0, None, True, "fine", "min") for n in names]
    text = report.markdown(report.build(base, head, verdicts, {}, base_ref="main", head_ref=None))
    chart = text.split("```mermaid\n")[1].split("\n```\n")[0].split("\n")
    assert chart[:2] == ["xychart-beta", '    title "train: base (bars) vs head (line)"']
    label = r'"[A-Za-z0-9_.:/%+()= -]{1,40}"'
    assert re.fullmatch(rf"    x-axis \[{label}(, {label}){{{len(names) - 1}}}\]", chart[2])
    assert chart[3:] == ["    bar [" + ", ".join(["250000000000000000000"] * len(names)) + "]",
                         "    line [" + ", ".join(["0.0000001"] * len(names)) + "]"]


def test_a_huge_lock_is_cut_under_the_comment_limit(tmp_path: Path,
                                                    cli: Callable[..., Result]) -> None:
    big = Lock({f"step{i:02d}": entry(f"f{i}", metrics={f"metric_{j}_{'n' * 40}": j + i / 7
                                                        for j in range(400)})
                for i in range(20)})
    base = Lock({name: entry("old", metrics={m: 0.0 for m in e.metrics})
                 for name, e in big.entries.items()})
    root = repo(tmp_path, base, big)
    done = cli("report", str(root), "--base", "main")
    assert done.code == 0, done.err
    assert len(done.out) < report.LIMIT
    assert done.out.startswith("<!-- mlproject report -->\n## mlproject report\n")
    assert "| `step19` | — | re-ran (no local run record) | 400 | 0 | 0 | — |\n" in done.out
    assert "| `train` | ❌ 3 | not in the lock | 0 | 0 | 0 | — |\n" in done.out  # gated, not run
    absent = json.loads(cli("report", str(root), "--base", "main", "--format", "json").out)
    assert [(e["entry_point"], e["change"], len(e["gates"])) for e in absent["entry_points"]
            if e["head_fingerprint"] is None] == [("train", "absent", 3)]
    tail = done.out.rsplit("\n\n", 1)[-1]
    assert tail.startswith("> ✂️ Cut here to fit GitHub's comment limit (65,536 characters): ")
    assert tail.endswith(" of 21 entry points are shown in part or not at all. `mlproject "
                         "report --format json` holds all of it.\n")
    assert not done.out.rsplit("\n\n", 1)[0].endswith("|---|---|\n")  # no header without rows
    assert done.out.count("```") % 2 == 0
    whole = report.markdown(report.build(base, big, [], {}, base_ref="main", head_ref=None),
                            limit=10**9)
    assert len(whole) > report.LIMIT and "cut here" not in whole


def test_the_runs_that_made_the_head_are_named(tmp_path: Path, cli: Callable[..., Result]) -> None:
    """A real run writes the lock; the report names its run id, and a step whose fingerprint is
    the base's did not re-run."""
    root = write_project(tmp_path / "proj", {
        "MLproject": """\
            name: real
            entry_points:
              main:
                parameters:
                  acc: {type: float, default: 0.9}
                command: "python write.py {acc}"
                metrics: metrics.json
            """,
        "write.py": "import json, sys\njson.dump({'acc': float(sys.argv[1])}, "
                    "open('metrics.json', 'w'))\n",
        ".gitignore": ".mlproject/\nmetrics.json\n",
    })
    git_init(root)
    assert cli("run", str(root), "--env", "local").code == 0
    git(root, "add", "mlproject.lock")
    git(root, "commit", "-qm", "lock")
    same = cli("report", str(root), "--base", "main")
    assert "| `main` | — | not re-run (as the base) | 0 | 0 | 0 | — |\n" in same.out
    assert cli("run", str(root), "--env", "local", "-P", "acc=0.95").code == 0
    runs = json.loads(cli("runs", "--project", str(root), "--json").out)
    last = runs[-1]["id"] if isinstance(runs, list) else runs["runs"][-1]["id"]
    done = cli("report", str(root), "--base", "main")
    assert f"| `main` | — | re-ran: `{last}` | 1 | 1 | 0 | — |\n" in done.out
    assert "| `acc` | 0.9 | 0.95 | +0.05 | +5.56 % | — |\n" in done.out


def test_report_does_not_import_matplotlib(tmp_path: Path) -> None:
    root = repo(tmp_path, BASE, HEAD)
    probe = ("import sys; from mlproject.runner.cli.main import main; "
             f"code = main(['report', {str(root)!r}, '--base', 'main']); "
             "sys.stderr.write(repr((code, 'matplotlib' in sys.modules)))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=root)
    assert done.stderr == "(0, False)"


def test_plots_need_the_extra(tmp_path: Path, cli: Callable[..., Result],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    root = repo(tmp_path, BASE, HEAD)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as a core install has it
    done = cli("report", str(root), "--base", "main", "--plots", str(tmp_path / "plots"))
    assert (done.code, done.out) == (2, "")
    assert done.err == ("mlproject: error: --plots draws with matplotlib, which is not installed: "
                        "pip install 'mlproject[plots]'\n")
    assert not (tmp_path / "plots").exists()


def test_plots_draw_metrics_and_per_epoch_series(tmp_path: Path,
                                                 cli: Callable[..., Result]) -> None:
    pytest.importorskip("matplotlib")  # the test extra has it (mlproject[plots])
    base_series = "epoch,loss,acc\n1,0.9,0.5\n2,0.6,0.7\n3,0.4,0.9\n"
    head_series = "epoch,loss,acc\n1,0.8,0.6\n2,0.5,0.8\n3,0.45,0.925\n4,nan,0.93\n"
    root = repo(tmp_path, BASE, HEAD, files={"history.csv": base_series},
                head_files={"history.csv": head_series})
    out = tmp_path / "plots"
    done = cli("report", str(root), "--base", "main", "--plots", str(out))
    assert done.code == 0, done.err
    assert done.err == (f"wrote {out / 'metrics-prepare.png'}\nwrote {out / 'metrics-train.png'}\n"
                        f"wrote {out / 'series-train.png'}\n")
    for name in ("metrics-prepare.png", "metrics-train.png", "series-train.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a base without the series file: the head's curves alone, with a warning
    git(root, "rm", "-q", "--cached", "history.csv")
    git(root, "commit", "-qm", "drop the series")
    again = cli("report", str(root), "--base", "main", "--plots", str(out))
    assert again.code == 0
    assert again.err.startswith("mlproject: warning: the base has no series history.csv at main "
                                "in Git: its curves are left out\n")


def test_a_series_file_is_read_as_csv_tsv_or_json() -> None:
    from mlproject.runner.gitops.plots import PlotError, parse_series

    csv = parse_series("step,loss\n0,1.5\n1,x\n2,0.5\n", "h.csv")
    assert (csv.x, dict(csv.columns)) == ("step", {"loss": ((0.0, 1.5), (2.0, 0.5))})
    tsv = parse_series("loss\tacc\n1\t0.5\n", "h.tsv")
    assert dict(tsv.columns) == {"loss": ((0.0, 1.0),), "acc": ((0.0, 0.5),)}
    rows = parse_series('[{"epoch": 1, "acc": 0.5}, {"epoch": 2, "acc": 0.75}]', "h.json")
    assert dict(rows.columns) == {"acc": ((1.0, 0.5), (2.0, 0.75))}
    cols = parse_series('{"acc": [0.5, 0.75], "flag": [true, false]}', "h.json")
    assert dict(cols.columns) == {"acc": ((0.0, 0.5), (1.0, 0.75))}
    with pytest.raises(PlotError) as caught:
        parse_series('"just text"', "h.json")
    assert str(caught.value) == ("h.json: expected a list of objects (a row per epoch) or an "
                                 "object of lists (a column per name)")
    with pytest.raises(PlotError) as empty:
        parse_series("name\nfoo\n", "h.csv")
    assert str(empty.value) == "h.csv holds no column of numbers"


@pytest.mark.parametrize(("metrics", "message"), [
    ("{file: m.json, series: /tmp/h.csv}", "entry_points.main.metrics.series: '/tmp/h.csv' is "
     "an absolute path: series files are paths inside the project, relative to its directory"),
    ("{series: h.csv}", "entry_points.main.metrics: missing required key 'file'"),
    ("{file: m.json, series: 3}", "entry_points.main.metrics.series: expected a string, got 3"),
])
def test_the_series_field_has_located_errors(tmp_path: Path, cli: Callable[..., Result],
                                             metrics: str, message: str) -> None:
    root = write_project(tmp_path / "p", {"MLproject": f"""\
        entry_points:
          main:
            command: "python -c pass"
            metrics: {metrics}
        """})
    done = cli("validate", str(root))
    assert done.code == 2
    assert f"{root / 'MLproject'}:4:" in done.err and message in done.err, done.err


def test_both_forms_of_metrics_build_the_same_file(tmp_path: Path) -> None:
    from mlproject.spec import load

    for text, series in (("metrics.json", None), ("{file: metrics.json, series: h.csv}", "h.csv")):
        root = write_project(tmp_path / str(series), {"MLproject": f"""\
            entry_points:
              main:
                command: "python -c pass"
                metrics: {text}
            """})
        built = load(str(root)).entry_points["main"]
        assert (built.metrics, built.series) == ("metrics.json", series)


def test_package_moves_follow_version_order() -> None:
    moves = diff.packages({"a": "1.9", "b": "2.0", "c": "1.0.0", "d": "x-1", "e": "1"},
                          {"a": "1.10", "b": "2.0rc1", "c": "1.0", "d": "x-2", "f": "1"})
    assert [(p.name, p.move) for p in moves] == [
        ("a", "upgraded"), ("b", "downgraded"), ("c", "changed"), ("d", "changed"),
        ("e", "removed"), ("f", "added")]


def test_relative_delta_from_zero_is_none() -> None:
    change = diff.MetricChange("m", 0.0, 1.0)
    assert (change.delta, change.relative) == (1.0, None)
    assert diff.MetricChange("m", -2.0, -1.0).relative == 0.5


def test_plots_of_two_revisions_read_both_series_from_git(tmp_path: Path,
                                                          cli: Callable[..., Result]) -> None:
    pytest.importorskip("matplotlib")
    root = repo(tmp_path, BASE, HEAD, files={"history.csv": "epoch,acc\n1,0.5\n2,0.9\n"},
                head_files={"history.csv": "epoch,acc\n1,0.6\n2,0.925\n"})
    git(root, "commit", "-qam", "head")
    (root / "history.csv").write_text("not, a series\n")  # the working tree is not read
    out = tmp_path / "plots"
    done = cli("report", str(root), "--base", "main~1", "--head", "main", "--plots", str(out),
               "-o", str(tmp_path / "report.md"))
    assert (done.code, done.out) == (0, "")
    assert done.err == (f"wrote {out / 'metrics-prepare.png'}\nwrote {out / 'metrics-train.png'}\n"
                        f"wrote {out / 'series-train.png'}\n")
    assert (tmp_path / "report.md").read_text().startswith(report.MARKER + "\n")
