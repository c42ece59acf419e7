"""The page's JavaScript, last part: the header, the sweeps, the runs without a usable record,
and the start: every section built, drawn, redrawn on a filter or a resize, and then
`document.body.dataset.ready = "yes"` (what a test of the page waits for). GUARD runs first, in
a script of its own: any error or console.error of the page is written into the page itself
(`#errors`, and a count in `data-errors` on <html>), where a reader and a test both see it.
"""
from __future__ import annotations

GUARD = r"""
(function () {
  "use strict";
  const box = document.getElementById("errors");
  let count = 0;
  const note = (text) => {
    count += 1;
    if (count === 1) box.append("This page met an error while drawing itself:\n");
    box.hidden = false;
    box.append(String(text) + "\n");
    document.documentElement.setAttribute("data-errors", String(count));
  };
  window.addEventListener("error", (e) => note("error: " + e.message + " (line " + e.lineno + ":" +
                                               e.colno + ")"));
  window.addEventListener("unhandledrejection", (e) => note("unhandled rejection: " + e.reason));
  const original = console.error.bind(console);
  console.error = (...args) => { note("console.error: " + args.map(String).join(" ")); original(...args); };
})();
"""

MAIN = r"""
let renderAll = () => {};
let renderPlots = () => {};

function header() {
  const root = DATA.project.root;
  const name = DATA.project.name || root.split("/").filter(Boolean).pop() || root;
  document.title = "Runs of " + name + " \u00b7 mlproject";
  document.getElementById("title").textContent = "Runs of " + name;
  const c = DATA.counts;
  document.getElementById("sub").textContent = root + " \u00b7 " + c.directories + " run director" +
    (c.directories === 1 ? "y" : "ies") + " \u00b7 written " + when(DATA.generated_at) + " UTC";
  const chips = document.getElementById("statuses");
  const first = ["succeeded", "failed", "running", "queued"];
  const rank = (s) => (first.includes(s) ? first.indexOf(s) : first.length);
  const statuses = Object.entries(c.statuses)
    .sort((a, b) => rank(a[0]) - rank(b[0]) || COLLATE.compare(a[0], b[0]));
  for (const [status, n] of statuses) {
    chips.append(el("span", {class: "chip status-" + status, text: n + " " + status}), " ");
  }
  const notes = document.getElementById("notes");
  if (!c.directories) {
    notes.append(el("p", {class: "notes", text: "No run is recorded in " + root + " yet: `mlproject run` " +
                         "records each run under .mlproject/runs/, and this page shows them."}));
  }
  if (DATA.notes.length) {
    notes.append(el("div", {class: "notes"}, [el("strong", {text: "Left out to keep the page light:"}),
                                             el("ul", {}, DATA.notes.map((n) => el("li", {text: n})))]));
  }
}

function sweepTable(sw) {
  const others = COLS.metrics.filter((m) => m !== sw.metric).slice(0, 6);
  const metrics = [...(sw.metric ? [sw.metric] : []), ...others];
  const cols = ["rank", "point", "run", "status", ...sw.parameters, ...metrics];
  const kind = (i) => (i >= 4 + sw.parameters.length ? "metric num" : i >= 4 ? "param" : "");
  const head = el("tr", {}, cols.map((c, i) => el("th", {class: kind(i), title: c, text: cut(c, 32)})));
  const body = el("tbody");
  let rank = 0;
  for (const id of sw.order.slice(0, 1000)) {
    const run = BY_ID.get(id);
    const ranked = sw.metric && run.status === "succeeded" && finite(run.metrics[sw.metric]);
    if (ranked) rank += 1;
    const cells = [el("td", {class: "num", text: ranked ? String(rank) : "\u2013"}),
                   el("td", {class: "num", text: run.sweep.index === null ? "\u2013"
                                                                          : String(run.sweep.index)}),
                   el("td", {class: "mono", title: run.id, text: shortId(run.id)}),
                   el("td", {title: run.reason}, [statusChip(run.status)])];
    for (const p of sw.parameters) {
      const v = run.parameters[p];
      cells.push(el("td", {title: v, text: v === undefined ? "\u2013" : cut(v, 40)}));
    }
    for (const m of metrics) {
      cells.push(el("td", {class: "num" + (m === sw.metric ? " key" : ""), text: fmt(run.metrics[m], 5)}));
    }
    body.append(el("tr", {class: id === sw.best ? "best" : null, "data-run": id}, cells));
  }
  const table = el("table", {class: "runs sweep"}, [el("thead", {}, [head]), body]);
  return el("div", {class: "tablewrap short"}, [table]);
}

function sweepsSection(section) {
  if (!DATA.sweeps.length) {
    section.append(empty("None of these runs is a point of a sweep (`mlproject sweep` runs an entry " +
                         "point at many points of its parameters)."));
    return;
  }
  for (const sw of DATA.sweeps) {
    const c = sw.counts;
    const counts = el("p", {class: "chips"}, [c.points + " point" + (c.points === 1 ? "" : "s") + ": ",
      el("span", {class: "chip status-succeeded", text: c.succeeded + " succeeded"}), " ",
      el("span", {class: "chip status-failed", text: c.failed + " failed"}),
      c.other ? " " : null,
      c.other ? el("span", {class: "chip status-running", text: c.other + " not ended"}) : null]);
    const how = sw.metric
      ? "Ranked by " + sw.metric + ", " + (sw.goal === "min" ? "lowest" : "highest") +
        " first, among the points that succeeded " +
        (sw.declared ? "(the sweep's metric and goal)."
         : "(the first metric its points have; lower or higher is better going by its name).")
      : "No point has a metric: the points are listed by index.";
    section.append(el("div", {class: "card sweepcard"}, [
      el("div", {class: "cardhead"}, [el("h3", {text: sw.name || "sweep " + sw.id}),
                                      el("span", {class: "mono muted", text: sw.id})]),
      counts, el("p", {class: "muted small", text: how}), sweepTable(sw)]));
  }
}

function unreadableSection(section) {
  if (!DATA.unreadable.length) return;
  section.hidden = false;
  const rows = DATA.unreadable.map((u) => el("tr", {}, [
    el("td", {class: "mono", text: u.id}), el("td", {}, [statusChip(u.status)]),
    el("td", {class: "wrap", text: u.problem})]));
  const head = el("tr", {}, ["run", "status", "problem"].map((t) => el("th", {text: t})));
  section.append(el("p", {class: "muted", text: "These run directories hold no record that can be read; " +
                                                "`mlproject runs` lists them too."}),
                 el("div", {class: "tablewrap short"}, [el("table", {class: "runs"}, [
                   el("thead", {}, [head]), el("tbody", {}, rows)])]));
}

(function start() {
  header();
  const section = (id) => document.getElementById(id);
  const table = tableSection(section("runs"));
  renderPlots = plotsSection(section("params"));
  const curves = curvesSection(section("curves"));
  sweepsSection(section("sweeps"));
  unreadableSection(section("unreadable"));
  renderAll = () => { table(); renderPlots(); curves(); };
  renderAll();
  let width = document.documentElement.clientWidth, timer = null;
  window.addEventListener("resize", () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (document.documentElement.clientWidth === width) return;
      width = document.documentElement.clientWidth;
      renderPlots();
      curves();
    }, 200);
  });
  document.body.dataset.ready = "yes";
})();
"""
