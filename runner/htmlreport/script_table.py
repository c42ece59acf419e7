"""The page's JavaScript, part two: the table of runs. A click on a header sorts by it (again:
the other way), numbers as numbers, a run without the value last either way; the text box keeps
the runs whose text (id, entry point, status, backend, commit, name=value of each parameter,
sweep) holds every word typed, and the plots below follow it. Rows come 500 at a time: a page
of 20,000 runs opens at once and shows the rest on request. The best value of each metric among
the runs shown is marked (lower is better for a loss, an error or a time, going by its name).
"""
from __future__ import annotations

TABLE = r"""
function tableColumns() {
  const cols = [
    {key: "id", label: "run", get: (r) => r.id, cls: "mono", title: (r) => r.id},
    {key: "entry", label: "entry point", get: (r) => r.entry_point},
    {key: "status", label: "status", get: (r) => r.status, cell: (r) => statusChip(r.status),
     title: (r) => r.reason},
    {key: "started", label: "started (UTC)", get: (r) => r.started_at, show: when},
    {key: "duration", label: "duration", get: (r) => r.duration, num: true, show: duration},
  ];
  for (const m of COLS.metrics) {
    cols.push({key: "m:" + m, label: m, group: "metric", num: true, metric: m,
               get: (r) => r.metrics[m], show: (v) => fmt(v, 5)});
  }
  for (const p of COLS.parameters) {
    cols.push({key: "p:" + p, label: p, group: "param", num: isNumberParam(p),
               get: (r) => paramValue(r, p), show: (v) => (typeof v === "number" ? String(v) : v),
               title: (r) => r.parameters[p]});
  }
  for (const p of COLS.logged_params) {
    cols.push({key: "l:" + p, label: p, group: "logged", get: (r) => r.logged_params[p],
               title: (r) => r.logged_params[p]});
  }
  cols.push({key: "commit", label: "commit", cls: "mono",
             title: (r) => r.commit && r.commit + (r.dirty ? " with changes not committed" : ""),
             get: (r) => (r.commit ? r.commit.slice(0, 8) + (r.dirty ? "+" : "") : null)});
  if (DATA.sweeps.length) {
    cols.push({key: "sweep", label: "sweep", title: (r) => r.sweep && r.sweep.id,
               get: (r) => (r.sweep ? (r.sweep.name || r.sweep.id) + " #" + r.sweep.index : null)});
  }
  return cols;
}

const missing = (col, v) => v === null || v === undefined || (col.num && !finite(v));

function sortedRuns(cols, runs) {
  const col = cols.find((c) => c.key === STATE.sort.key) || cols[3];
  const dir = STATE.sort.dir;
  return runs.slice().sort((a, b) => {
    const x = col.get(a), y = col.get(b), mx = missing(col, x), my = missing(col, y);
    if (mx || my) return mx && my ? a._i - b._i : mx ? 1 : -1;
    const order = col.num ? (x < y ? -1 : x > y ? 1 : 0) : COLLATE.compare(String(x), String(y));
    return dir * (order || a._i - b._i);  // ties by age: newest first when descending
  });
}

function bestOf(cols, runs) {
  const best = new Map();
  for (const col of cols) {
    if (!col.metric) continue;
    const lower = goal(col.metric) === "min";
    let found = null;
    for (const r of runs) {
      const v = r.metrics[col.metric];
      if (!finite(v) || r.status !== "succeeded") continue;
      if (found === null || (lower ? v < found : v > found)) found = v;
    }
    if (found !== null) best.set(col.key, found);
  }
  return best;
}

function renderTable(box) {
  box.replaceChildren();
  const cols = tableColumns();
  const runs = RUNS.filter(shown);
  const rows = sortedRuns(cols, runs);
  const best = bestOf(cols, runs);
  const head = el("tr");
  for (const col of cols) {
    const on = col.key === STATE.sort.key;
    const th = el("th", {class: [col.group || "", col.num ? "num" : ""].join(" ").trim(),
                         tabindex: 0, scope: "col", title: col.label + (col.group ? " (" +
                           {param: "parameter", logged: "logged parameter", metric: "metric"}[col.group] +
                           ")" : "") + ": click to sort",
                         "aria-sort": on ? (STATE.sort.dir > 0 ? "ascending" : "descending") : "none"},
                  [cut(col.label, 40),
                   el("span", {class: "arrow",
                               text: on ? (STATE.sort.dir > 0 ? " \u25b2" : " \u25bc") : ""})]);
    const sort = () => {
      STATE.sort = {key: col.key, dir: on ? -STATE.sort.dir : (col.num ? -1 : 1)};
      renderTable(box);
    };
    th.addEventListener("click", sort);
    th.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); }
    });
    head.append(th);
  }
  const body = el("tbody");
  for (const run of rows.slice(0, STATE.limit)) {
    const tr = el("tr", {"data-run": run.id});
    for (const col of cols) {
      const v = col.get(run);
      const classes = [col.num ? "num" : "", col.cls || ""];
      if (best.has(col.key) && v === best.get(col.key) && run.status === "succeeded") classes.push("best");
      const td = el("td", {class: classes.join(" ").trim(), title: col.title ? col.title(run) : null});
      if (col.cell) td.append(col.cell(run));
      else td.textContent = missing(col, v) ? "\u2013" : col.show ? col.show(v) : String(v);
      tr.append(td);
    }
    body.append(tr);
  }
  const table = el("table", {class: "runs", id: "runs-table"}, [el("thead", {}, [head]), body]);
  box.append(el("div", {class: "tablewrap"}, [table]));
  const count = document.getElementById("run-count");
  count.textContent = (runs.length === RUNS.length ? RUNS.length + " runs"
    : runs.length + " of " + RUNS.length + " runs match") +
    (rows.length > STATE.limit ? ", the first " + STATE.limit + " shown" : "");
  if (rows.length > STATE.limit) {
    const more = Math.min(500, rows.length - STATE.limit);
    box.append(el("button", {class: "more", text: "Show " + more + " more",
                             onclick: () => { STATE.limit += 500; renderTable(box); }}));
  }
}

function tableSection(section) {
  const box = el("div");
  const search = el("input", {type: "search", id: "filter",
                              placeholder: "Filter runs: words in id, status, name=value\u2026",
                              "aria-label": "filter runs", autocomplete: "off"});
  let timer = null;
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      STATE.filter = search.value.toLowerCase().split(/\s+/).filter(Boolean);
      STATE.limit = 500;
      renderAll();
    }, 120);
  });
  const key = el("span", {class: "key"}, [el("span", {class: "param", text: "parameter"}),
    el("span", {class: "logged", text: "logged"}), el("span", {class: "metric", text: "metric"}),
    el("span", {class: "best", text: "best"})]);
  const count = el("span", {id: "run-count", class: "muted"});
  section.append(el("div", {class: "toolbar"}, [search, count, key]), box);
  return () => renderTable(box);
}
"""
