"""`mlproject runs` over the runs' index: filters, sorts, limits, `runs compare`; the index
healed whatever happens to it or to the records."""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import git_init
from mlproject.runner.state import index, records

SPEC = """
entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.5}
      opt: {type: string, default: adam}
    command: "python -c \\"from mlproject import log; log.metric('acc', 1 - {alpha}); log.metric('loss', {alpha} * 2)\\""
  other:
    command: "true"
"""


@pytest.fixture
def runs(cli: Callable[..., Any], project: Callable[..., Path],
         monkeypatch: pytest.MonkeyPatch) -> Path:
    root = git_init(project({"MLproject": SPEC, ".gitignore": ".mlproject/\n"}))
    monkeypatch.chdir(root)
    for alpha, opt in (("0.1", "adam"), ("0.3", "sgd"), ("0.2", "adam"), ("1e-1", "sgd")):
        assert cli("run", ".", "--env", "local", "-P", f"alpha={alpha}", "-P", f"opt={opt}").code == 0
    assert cli("run", ".", "-e", "other", "--env", "local").code == 0
    return root


def _ids(cli: Callable[..., Any], *args: str) -> list[tuple[str, Any]]:
    result = cli("runs", "--json", *args)
    assert result.code == 0, result.err
    return [(r["entry_point"], r["parameters"].get("alpha")) for r in json.loads(result.out)]


def test_filters_sort_and_limit(cli: Callable[..., Any], runs: Path) -> None:
    assert _ids(cli, "--filter", "alpha>0.1") == [("main", "0.3"), ("main", "0.2")]
    assert _ids(cli, "--filter", "alpha=0.1") == [("main", "0.1"), ("main", "1e-1")]  # numbers
    assert _ids(cli, "--filter", "params.opt=sgd,metrics.acc>=0.8") == [("main", "1e-1")]
    assert _ids(cli, "--filter", "opt!=adam") == [("main", "0.3"), ("main", "1e-1")]  # lacking: out
    assert _ids(cli, "--filter", "status=succeeded,entry_point~oth") == [("other", None)]
    assert _ids(cli, "--sort=-loss") == [("main", "0.3"), ("main", "0.2"), ("main", "0.1"),
                                         ("main", "1e-1"), ("other", None)]  # lacking: last
    assert _ids(cli, "--sort", "opt,-alpha") == [("main", "0.2"), ("main", "0.1"),
                                                 ("main", "0.3"), ("main", "1e-1"), ("other", None)]
    assert _ids(cli, "--limit", "2") == [("main", "1e-1"), ("other", None)]  # the latest
    assert _ids(cli, "--sort", "loss", "--limit", "1") == [("main", "0.1")]
    table = cli("runs", "--filter", "alpha>5")
    assert table.code == 0 and table.out == "" and "no run meets the filter" in table.err
    rows = json.loads(cli("runs", "--json").out)
    assert set(rows[0]) == {*index.SHOWN}  # nothing of the index's own


@pytest.mark.parametrize("args, message", [
    (["--filter", "alpha"], "expected NAME OP VALUE"),
    (["--filter", ","], "--filter is empty"),
    (["--filter", "a b=1"], "expected NAME OP VALUE"),
    (["--sort", "-"], "expected a NAME"),
    (["--limit", "0"], "must be at least 1"),
])
def test_a_wrong_query_is_a_usage_error(cli: Callable[..., Any], runs: Path, args: list[str],
                                        message: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        result = cli("runs", *args)
        code, err = result.code, result.err
    except SystemExit as exc:  # argparse's own refusal
        code, err = int(exc.code or 0), capsys.readouterr().err
    assert code == 2 and message in err


def test_compare_marks_what_differs(cli: Callable[..., Any], runs: Path) -> None:
    ids = [r["id"] for r in json.loads(cli("runs", "--json", "--filter", "entry_point=main").out)]
    result = cli("runs", "compare", ids[0], ids[1][:22])
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == [ids[0], ids[1]]
    assert "*  parameter alpha" in result.out and "*  parameter opt" in result.out
    assert any(line.startswith("*  metric acc") and "0.9" in line and "0.7" in line
               for line in lines)
    assert "code commit" not in result.out  # the same in both: only with --all
    assert "code commit" in cli("runs", "compare", ids[0], ids[1], "--all").out
    data = json.loads(cli("runs", "compare", *ids, "--json").out)
    assert data["runs"] == ids
    rows = {(r["section"], r["name"]): r for r in data["rows"]}
    assert rows[("parameter", "alpha")]["values"] == ["0.1", "0.3", "0.2", "1e-1"]
    assert rows[("parameter", "alpha")]["differs"] and not rows[("code", "commit")]["differs"]
    assert rows[("environment", "name")]["values"] == ["local (local)"] * 4
    for args, message in (([ids[0]], "at least two"), ([ids[0], ids[0]], "named twice"),
                          ([ids[0], "nope"], "no run 'nope'")):
        refused = cli("runs", "compare", *args)
        assert refused.code == 2 and message in refused.err


def test_the_index_heals_whatever_happened_to_it(cli: Callable[..., Any], runs: Path) -> None:
    expected = cli("runs", "--json").out
    path = index.path(str(runs))
    assert path.exists()
    for damage in ("", "{not json", json.dumps({"format": "mlproject.runs-index/9"}),
                   json.dumps({"format": index.FORMAT, "runs": {"x": 1}}), "[]"):
        path.write_text(damage)
        assert cli("runs", "--json").out == expected
    data = json.loads(path.read_text())
    some_id = next(iter(data["runs"]))
    # a row that lies, with a stamp that matches: of the wrong shape, it is read again
    data["runs"][some_id]["row"] = {"id": "other", "status": 3}
    path.write_text(json.dumps(data))
    assert cli("runs", "--json").out == expected
    # a record rewritten (its stamp changes): its row follows
    run_json = records.runs_dir(str(runs)) / some_id / "run.json"
    record = json.loads(run_json.read_text())
    record["metrics"]["acc"] = 42.0
    run_json.write_text(json.dumps(record))
    assert json.loads(cli("runs", "--json").out)[0]["metrics"]["acc"] == 42.0
    # a run removed: gone from the list; a record broken: corrupt, the others still shown
    shutil.rmtree(records.runs_dir(str(runs)) / some_id)
    run_dirs = sorted(records.runs_dir(str(runs)).iterdir())
    (run_dirs[0] / "run.json").write_text("{")
    rows = json.loads(cli("runs", "--json").out)
    assert len(rows) == 4 and rows[0]["status"] == "corrupt" and "not valid JSON" in rows[0]["problem"]
    path.unlink()
    os.symlink("/etc/passwd", path)  # never followed into, replaced by the next write
    assert json.loads(cli("runs", "--json").out) == rows
    assert not path.is_symlink()


def test_a_run_left_running_by_a_dead_mlproject_is_crashed_through_the_index(
        cli: Callable[..., Any], runs: Path) -> None:
    run_dir = sorted(records.runs_dir(str(runs)).iterdir())[-1]
    record = json.loads((run_dir / "run.json").read_text())
    record.update(status="running", ended_at=None, exit_code=None)
    record["host"]["pid"] = 2 ** 22 + 1  # no such process
    (run_dir / "run.json").write_text(json.dumps(record))
    assert json.loads(cli("runs", "--json").out)[-1]["status"] == "crashed"
    assert json.loads(cli("runs", "--json").out)[-1]["status"] == "crashed"  # from the index


def test_an_index_that_cannot_be_written_does_not_stop_the_list(
        cli: Callable[..., Any], runs: Path) -> None:
    path = index.path(str(runs))
    path.unlink(missing_ok=True)
    path.mkdir()  # a rename onto it fails, as on a read-only or full disk (root ignores modes)
    (path / "keep").write_text("the user's")
    assert len(json.loads(cli("runs", "--json").out)) == 5
    assert (path / "keep").read_text() == "the user's"
