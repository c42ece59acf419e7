"""`mlproject report --html OUT`: the runs of a real project (real runs that log series, one that
fails, hostile values) as one page, checked as text (self-contained, nothing of a record
unescaped) and in a real headless Chromium: its script ran (the ready marker), no error
happened (the page's own error box, and Chromium's console lines), the table and the sweep's
ranking are in the DOM, and a screenshot is not blank. Also: the refusals, corrupt and hostile
records, and 5,000 runs."""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from conftest import Result, git_init
from mlproject.runner.htmlreport import data, page
from mlproject.runner.state import records

CHROMIUM = "/usr/bin/chromium"
chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                              reason=f"{CHROMIUM} is not installed (Debian's `chromium`; CI installs "
                                     "it): the page is not opened in a browser here")
HOSTILE = "</script><script>alert(1)</script>"
BOLD = "<b>acc</b>"  # a metric's name

SPEC = """
    name: demo
    entry_points:
      main:
        parameters: {alpha: {type: float, default: 0.1}, tag: {type: string, default: plain}}
        command: "python train.py {alpha} {tag}"
        metrics: metrics.json
"""
TRAIN = """
import json, sys
from mlproject import log
alpha = float(sys.argv[1])
for epoch in range(8):
    log.metric("loss", 1.0 / (epoch + 1) + alpha, step=epoch)
    log.metric("<b>acc</b>", 1 - alpha / (epoch + 1), step=epoch)
log.param("optimizer", "adam")
json.dump({"f1": 0.5 + alpha}, open("metrics.json", "w"))
sys.exit(3 if alpha > 0.9 else 0)
"""


def _made(cli: Callable[..., Result], project: Callable[..., Path],
          alphas: tuple[float | str, ...] = (0.3, 0.1, 0.2, 0.95)) -> tuple[Path, list[str]]:
    """A real project and its real runs, one per alpha (the first with the hostile tag; alpha
    over 0.9 fails); the run ids in the order run."""
    root = git_init(project({"MLproject": SPEC, "train.py": TRAIN}))
    for i, alpha in enumerate(alphas):
        tag = ["-P", f"tag={HOSTILE}"] if i == 0 else []
        result = cli("run", str(root), "--env", "local", "-P", f"alpha={alpha}", *tag)
        assert result.code == (3 if float(alpha) > 0.9 else 0), result.err
    ids = [one.id for one in records.loaded_runs(str(root))]
    assert len(ids) == len(alphas)
    return root, ids


def _rewrite(root: Path, run_id: str, **fields: Any) -> None:
    path = records.runs_dir(str(root)) / run_id / "run.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))
    assert records.load(path.parent).record is not None  # still a valid record


def _data_of(html: str) -> Any:
    found = re.search(r'<script type="application/json" id="data">(.*?)</script>', html, re.S)
    assert found
    return json.loads(found.group(1))


def _static_checks(html: str) -> None:
    """Self-contained, and nothing of a record unescaped."""
    assert page.MARKER in html[:400]
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(//|[a-z]+:)""", html, re.I)
    assert "<link" not in html and "@import" not in html and "url(" not in html.replace("url(#", "")
    assert HOSTILE not in html and "alert(1)</script>" not in html
    assert "<b>" not in html and "</b>" not in html
    assert html.count("</script>") == 3  # the data, the guard, the page's script: no other
    assert "\\u003c/script\\u003e\\u003cscript\\u003ealert(1)" in html
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html)
    assert policy and "default-src 'none'" in policy.group(1)
    for script in re.findall(r"<script>(.*?)</script>", html, re.S):  # they run: their hashes
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy.group(1)


def test_the_page_of_real_runs_holds_them_escaped_and_self_contained(
        cli: Callable[..., Result], project: Callable[..., Path], tmp_path: Path) -> None:
    root, ids = _made(cli, project, (0.3, 0.1))
    out = tmp_path / "pages" / "runs.html"
    result = cli("report", str(root), "--html", str(out))
    assert result.code == 0, result.err
    assert result.err == f"mlproject: wrote {out} (2 runs)\n" and result.out == ""
    html = out.read_text()
    _static_checks(html)
    shown = _data_of(html)
    assert [r["id"] for r in shown["runs"]] == ids
    first = shown["runs"][0]
    assert first["parameters"] == {"alpha": "0.3", "tag": HOSTILE}
    assert first["logged_params"] == {"optimizer": "adam"}
    assert first["metrics"]["f1"] == pytest.approx(0.8) and BOLD in first["metrics"]
    assert [p[0] for p in first["series"]["loss"]] == list(range(8))
    assert first["series"]["loss"][-1][1] == pytest.approx(0.125 + 0.3)
    assert first["backend"] == "local" and first["dirty"] is False and len(first["commit"]) == 40
    assert shown["columns"]["parameter_kinds"] == {"alpha": "number", "tag": "text"}
    assert shown["columns"]["series"] == ["loss", BOLD] and shown["sweeps"] == []
    assert cli("report", str(root / "MLproject"), "--html", str(out)).code == 0  # its own page


def test_refusals_are_one_line_and_exit_2(cli: Callable[..., Result],
                                          project: Callable[..., Path], tmp_path: Path) -> None:
    root = git_init(project({"MLproject": SPEC, "train.py": TRAIN}))
    mine = tmp_path / "notes.html"
    mine.write_text("<html>my own page</html>")
    a_file = tmp_path / "plain"
    a_file.write_text("x")
    cases = [
        ((str(root), "--html", str(tmp_path)), f"--html {tmp_path}: is a directory"),
        ((str(root), "--html", str(mine)), f"--html {mine}: a file is there that `mlproject "
                                           "report --html` did not write: refusing"),
        ((str(root), "--html", str(a_file / "page.html")), f"--html {a_file / 'page.html'}: "),
        ((str(tmp_path / "nowhere"), "--html", str(tmp_path / "p.html")), "no such project"),
        ((str(tmp_path), "--html", str(tmp_path / "p.html")), "not a project"),
    ]
    for args, message in cases:
        result = cli("report", *args)
        assert result.code == 2, (args, result.err)
        assert result.err.startswith("mlproject: error: ") and message in result.err, result.err
        assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert mine.read_text() == "<html>my own page</html>"
    os.mkfifo(tmp_path / "fifo")  # refused at once, never read (which would block)
    result = cli("report", str(root), "--html", str(tmp_path / "fifo"))
    assert result.code == 2 and "is not a regular file" in result.err


def test_a_project_without_runs_gets_a_page_saying_so(
        cli: Callable[..., Result], project: Callable[..., Path], tmp_path: Path) -> None:
    root = git_init(project({"MLproject": SPEC, "train.py": TRAIN}))
    out = tmp_path / "empty.html"
    result = cli("report", str(root), "--html", str(out))
    assert result.code == 0 and "(0 runs)" in result.err
    shown = _data_of(out.read_text())
    assert shown["runs"] == [] and shown["counts"]["directories"] == 0


def _hostile_project(cli: Callable[..., Result], project: Callable[..., Path]) -> tuple[Path, str]:
    """Real runs, then: a run whose metrics are as large as a float goes (and an integer past
    it), whose parameter holds a lone surrogate and a name 300 characters long, whose series has
    10,000 points; a run.json that is not JSON; a run directory without run.json."""
    root, ids = _made(cli, project, (0.3, 0.1))
    _rewrite(root, ids[1],
             metrics={"huge": 1.7e308, "tiny": -1.7e308, "big_int": 10 ** 300, "<b>": 1.0},
             parameters={"alpha": "0.1", "tag": "\ud800 lone", "n" * 300: "long name"},
             series={"loss": [[i, float(i % 97), 1.7e9 + i] for i in range(10_000)],
                     "huge": [[None, 1.7e308, 1.7e9], [None, -1.7e308, 1.7e9]]})
    broken = records.runs_dir(str(root)) / "20990101-000000-000000-ffffff"
    broken.mkdir()
    (broken / "run.json").write_text('{"id": "20990101-000000-000000-ffffff", "status": ')
    (records.runs_dir(str(root)) / "20990101-000000-000001-eeeeee").mkdir()
    return root, ids[1]


def test_hostile_records_never_stop_the_page(cli: Callable[..., Result],
                                             project: Callable[..., Path], tmp_path: Path) -> None:
    root, hostile = _hostile_project(cli, project)
    out = tmp_path / "hostile.html"
    result = cli("report", str(root), "--html", str(out))
    assert result.code == 0, result.err
    html = out.read_text()
    _static_checks(html)
    shown = _data_of(html)
    run = next(r for r in shown["runs"] if r["id"] == hostile)
    assert run["metrics"]["huge"] == 1.7e308 and run["metrics"]["big_int"] == 1e300
    assert run["parameters"]["tag"] == "\ufffd lone"  # a lone surrogate crashes Chromium
    assert len(run["series"]["loss"]) == data.MAX_POINTS
    assert run["series"]["loss"][0] == [0, 0.0] and run["series"]["loss"][-1] == [9999, 9999 % 97]
    assert any("name longer than 200" in n for n in shown["notes"])
    assert any("thinned to 500" in n for n in shown["notes"])
    assert {u["id"]: u["status"] for u in shown["unreadable"]} == {
        "20990101-000000-000000-ffffff": "corrupt", "20990101-000000-000001-eeeeee": "crashed"}
    assert "not valid JSON" in shown["unreadable"][0]["problem"]


def test_the_data_is_bounded(cli: Callable[..., Result], project: Callable[..., Path],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = _made(cli, project, (0.3,))
    [one] = records.loaded_runs(str(root))
    assert one.record is not None
    many = [records.Loaded(f"2025-{i:04d}", dataclasses.replace(
        one.record, id=f"2025-{i:04d}", metrics={f"m{i % 7}": float(i)}, parameters={"alpha": str(i)}))
        for i in range(30)]
    monkeypatch.setattr(data, "MAX_RUNS", 20)
    monkeypatch.setattr(data, "MAX_COLUMNS", 5)
    monkeypatch.setattr(data, "MAX_CURVES", 4)
    shown = data.build(many, root="/p", generated_at="now")
    assert [r["id"] for r in shown["runs"]] == [f"2025-{i:04d}" for i in range(10, 30)]
    assert len(shown["columns"]["metrics"]) == 5
    assert sum(bool(r["series"]) for r in shown["runs"]) == 4  # the newest four curves
    assert all(r["series"] for r in shown["runs"][-4:])
    assert any("10 older runs are left out" in n for n in shown["notes"])
    assert any("2 metrics used by fewer runs left out" in n for n in shown["notes"])
    assert page.data_json(shown)  # finite, JSON


def test_a_sweep_is_ranked_best_first_with_its_counts(
        cli: Callable[..., Result], project: Callable[..., Path]) -> None:
    root, ids = _made(cli, project)
    for index, run_id in enumerate(ids):  # alphas 0.3, 0.1, 0.2, 0.95 (failed)
        _rewrite(root, run_id, sweep={"id": "sw-1", "name": "grid", "index": index})
    [sweep] = data.build(records.loaded_runs(str(root)), root=str(root), generated_at="now")["sweeps"]
    assert sweep["metric"] == "loss" and sweep["goal"] == "min" and sweep["name"] == "grid"
    assert sweep["order"] == [ids[1], ids[2], ids[0], ids[3]] and sweep["best"] == ids[1]
    assert sweep["counts"] == {"points": 4, "succeeded": 3, "failed": 1, "other": 0}
    assert sweep["parameters"] == ["alpha", "tag"]


# --- in a real browser --------------------------------------------------------------------------

def _browse(url: str, tmp: Path, *extra: str, budget: int = 5000) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
         f"--user-data-dir={tmp / 'chromium-profile'}", "--enable-logging=stderr", "--v=0",
         f"--virtual-time-budget={budget}", *extra, url],
        capture_output=True, text=True, timeout=180, env={**os.environ, "HOME": str(tmp)},
        check=False)


class _Dom(HTMLParser):
    """What a test asks of the dumped DOM: the tags, each table's rows (by id), the texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.tables: list[tuple[str, list[str]]] = []
        self.attrs: dict[str, dict[str, str | None]] = {}
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        found = dict(attrs)
        if tag in ("html", "body") or found.get("id") == "errors":
            self.attrs[found.get("id") or tag] = found
        if tag == "table":
            self.tables.append((found.get("class") or "", []))
        elif tag == "tr" and found.get("data-run") and self.tables:
            self.tables[-1][1].append(found["data-run"] or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


PROBE = """
const rows = () => [...document.querySelectorAll("#runs-table tbody tr")].map((tr) => tr.dataset.run);
const header = (name) => [...document.querySelectorAll("#runs-table th")]
  .find((th) => th.textContent.replace(/[\u25b2\u25bc ]/g, "") === name);
const curves = () => document.querySelectorAll("svg.curve path.run").length;
const probe = {};
header("alpha").click();
probe.first = rows();
header("alpha").click();
probe.again = rows();
probe.curves = curves();
document.querySelector(".legend .item").click();
probe.hidden = curves();
const box = document.getElementById("filter");
box.value = "ALPHA=0.2";
box.dispatchEvent(new Event("input"));
setTimeout(() => { probe.filtered = rows(); document.body.dataset.probe = JSON.stringify(probe); }, 500);
"""


def _probed(html: str) -> str:
    """The page with PROBE run after its own script (and allowed by its policy, by hash): it
    clicks a header twice, hides a run's curves from a legend, types into the filter box."""
    digest = base64.b64encode(hashlib.sha256(PROBE.encode()).digest()).decode()
    html = html.replace("script-src ", f"script-src 'sha256-{digest}' ", 1)
    return html.replace("</body>", f"<script>{PROBE}</script>\n</body>")


def _opened(page_file: Path, tmp: Path, budget: int = 5000, scripts: int = 3) -> _Dom:
    """The page opened in Chromium: its script ran to the end, and nothing went wrong."""
    done = _browse(page_file.as_uri(), tmp, "--dump-dom", budget=budget)
    assert done.returncode == 0, done.stderr[-3000:]
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    assert console == [], console  # the page logs nothing: any line is an error or a warning
    dom = _Dom()
    dom.feed(done.stdout)
    assert dom.attrs["body"].get("data-ready") == "yes", done.stdout[:3000]
    assert "data-errors" not in dom.attrs["html"]
    assert "hidden" in dom.attrs["errors"]
    assert dom.tags.count("script") == scripts and "b" not in dom.tags  # nothing injected
    return dom


def _not_blank(png: Path) -> int:
    """The number of distinct colours in the picture (a PNG read with zlib: 8-bit RGB(A))."""
    raw = png.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, kind = struct.unpack(">IIBB", raw[16:26])
    assert depth == 8 and kind in (2, 6), (depth, kind)
    chunks, at = b"", 8
    while at < len(raw):
        size, name = struct.unpack(">I4s", raw[at:at + 8])
        if name == b"IDAT":
            chunks += raw[at + 8:at + 8 + size]
        at += size + 12
    pixels = zlib.decompress(chunks)
    bpp = 3 if kind == 2 else 4
    stride = width * bpp
    colours: set[bytes] = set()
    previous = bytearray(stride)
    for y in range(height):
        kind_of_filter = pixels[y * (stride + 1)]
        line = bytearray(pixels[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up = previous[i]
            corner = previous[i - bpp] if i >= bpp else 0
            if kind_of_filter == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind_of_filter == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind_of_filter == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind_of_filter == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        if y % 8 == 0:
            colours.update(bytes(line[x:x + 3]) for x in range(0, stride, bpp * 4))
        previous = line
    return len(colours)


@pytest.mark.slow
@chromium
def test_the_page_draws_in_chromium(cli: Callable[..., Result], project: Callable[..., Path],
                                    tmp_path: Path) -> None:
    root, ids = _made(cli, project, ("3e-1", 0.1, 0.2, 0.95))  # as text, 3e-1 would sort last
    for index, run_id in enumerate(ids):
        _rewrite(root, run_id, sweep={"id": "sw-1", "name": "grid", "index": index})
    out = tmp_path / "runs.html"
    assert cli("report", str(root), "--html", str(out)).code == 0
    dom = _opened(out, tmp_path)
    tables = dict(dom.tables)
    assert sorted(tables["runs"]) == sorted(ids)  # the table of runs, every run a row
    assert tables["runs sweep"] == [ids[1], ids[2], ids[0], ids[3]]  # best loss first
    text = "".join(dom.text)
    assert HOSTILE in text and BOLD in text  # shown, as text
    assert "4 runs" in text and "3 succeeded" in text and "1 failed" in text
    for heading in ("Parallel coordinates", "Scatter", "Curves", "Sweeps"):
        assert heading in text
    assert dom.tags.count("svg") >= 5  # the namespace's, parallel coordinates, scatter, 2 curves
    shot = tmp_path / "shot.png"
    done = _browse(out.as_uri(), tmp_path, f"--screenshot={shot}", "--window-size=1400,2400")
    assert done.returncode == 0 and shot.stat().st_size > 20_000, done.stderr[-2000:]
    assert _not_blank(shot) > 50
    if os.environ.get("MLPROJECT_HTML_SHOT"):  # where a person wants to look at it
        shutil.copy(shot, os.environ["MLPROJECT_HTML_SHOT"])
    probed = tmp_path / "probed.html"
    probed.write_text(_probed(out.read_text()))
    probe = json.loads(_opened(probed, tmp_path, scripts=4).attrs["body"]["data-probe"] or "")
    by_alpha = [ids[3], ids[0], ids[2], ids[1]]  # 0.95, 0.3, 0.2, 0.1: as numbers, largest first
    assert probe["first"] == by_alpha and probe["again"] == by_alpha[::-1]
    assert probe["curves"] == 8 and probe["hidden"] == 6  # a run's two curves hidden
    assert probe["filtered"] == [ids[2]]


@pytest.mark.slow
@chromium
def test_hostile_records_and_no_runs_draw_without_an_error(
        cli: Callable[..., Result], project: Callable[..., Path], tmp_path: Path) -> None:
    root, _ = _hostile_project(cli, project)
    out = tmp_path / "hostile.html"
    assert cli("report", str(root), "--html", str(out)).code == 0
    dom = _opened(out, tmp_path)
    text = "".join(dom.text)
    assert "Runs without a usable record" in text and "not valid JSON" in text
    empty = project({"MLproject": SPEC}, name="empty")
    assert cli("report", str(empty), "--html", str(out)).code == 0
    assert "No run is recorded in" in "".join(_opened(out, tmp_path).text)


@pytest.mark.slow
@chromium
def test_five_thousand_runs_draw_within_the_time_budget(
        cli: Callable[..., Result], project: Callable[..., Path], tmp_path: Path) -> None:
    root, [first] = _made(cli, project, (0.3,))
    runs = records.runs_dir(str(root))
    record = json.loads((runs / first / "run.json").read_text())
    shutil.rmtree(runs / first)
    for i in range(5000):
        run_id = f"20250101-{i // 3600:02d}{i // 60 % 60:02d}{i % 60:02d}-{i:06d}-{i:06x}"
        alpha = (i % 100) / 100
        (runs / run_id).mkdir()
        (runs / run_id / "run.json").write_text(json.dumps({
            **record, "id": run_id, "parameters": {"alpha": str(alpha), "tag": f"t{i % 5}"},
            "metrics": {"loss": 0.125 + alpha, "f1": 0.5 + alpha},
            "series": {"loss": [[e, 1 / (e + 1) + alpha, 1.7e9] for e in range(8)]}}))
    out = tmp_path / "many.html"
    result = cli("report", str(root), "--html", str(out))
    assert result.code == 0 and "(5000 runs)" in result.err
    dom = _opened(out, tmp_path, budget=10_000)
    assert len(dict(dom.tables)["runs"]) == 500  # 500 rows at first, the rest on request
    assert "5000 runs, the first 500 shown" in "".join(dom.text)
