"""The page's JavaScript, part three: parameters against metrics. Parallel coordinates (an axis
per numeric parameter, per parameter of a few distinct values, and per metric; a parameter that
never changes tells nothing and is left out; each run one line, coloured by the metric chosen,
breaking where a run has no value) and a scatter plot of any two of them, x and y chosen. Both
draw the runs the table's filter keeps, over axes fixed by all the runs, so that filtering
does not move them.
"""
from __future__ import annotations

PLOTS = r"""
const MAX_AXES = 24;

function dimensions() {
  const dims = [];
  const add = (key, label, group, get) => {
    const values = RUNS.map(get);
    const ext = extent(values);
    if (ext) dims.push({key, label, group, get, ext, constant: new Set(values.filter(finite)).size < 2});
  };
  for (const p of COLS.parameters) {
    if (isNumberParam(p)) { add("p:" + p, p, "param", (r) => paramValue(r, p)); continue; }
    const cats = [...new Set(RUNS.map((r) => r.parameters[p]).filter((v) => v !== undefined))];
    if (cats.length >= 2 && cats.length <= 12) {
      cats.sort(COLLATE.compare);
      dims.push({key: "p:" + p, label: p, group: "param", cats, get: (r) => r.parameters[p]});
    }
  }
  for (const m of COLS.metrics) add("m:" + m, m, "metric", (r) => r.metrics[m]);
  return dims;
}
const DIMS = dimensions();
const NUMERIC = DIMS.filter((d) => d.ext).concat(
  extent(RUNS.map((r) => r.duration)) ? [{key: "duration", label: "duration (s)", group: "run",
    get: (r) => r.duration, ext: extent(RUNS.map((r) => r.duration))}] : []);

function colouring() {
  const m = STATE.colour;
  const ext = m ? extent(RUNS.map((r) => r.metrics[m])) : null;
  if (!ext) return {of: () => "#8c959f", ext: null, value: () => null};
  // the bright end of the ramp is the best value: the lowest where lower is better
  const t = goal(m) === "min" ? scale(ext[0], ext[1], 1, 0) : scale(ext[0], ext[1], 0, 1);
  const value = (r) => (finite(r.metrics[m]) ? r.metrics[m] : null);
  return {ext, value, of: (r) => (value(r) === null ? "#b8bec6" : ramp(t(value(r))))};
}

// runs in the order drawn: without the colour's metric first, then worst to best (best on top)
function drawOrder(runs, colour) {
  const lower = STATE.colour && goal(STATE.colour) === "min";
  return runs.slice().sort((a, b) => {
    const x = colour.value(a), y = colour.value(b);
    if (x === null || y === null) return (x === null ? 0 : 1) - (y === null ? 0 : 1);
    return lower ? y - x : x - y;
  });
}

function describe(run, colour) {
  return run.id + " (" + run.status + ")" + (STATE.colour && colour.value(run) !== null
    ? "\n" + STATE.colour + " = " + fmt(colour.value(run), 6) : "") +
    Object.entries(run.parameters).slice(0, 8).map(([k, v]) => "\n" + k + " = " + cut(v, 60)).join("");
}

function renderParallel(box) {
  box.replaceChildren();
  const dims = DIMS.filter((d) => !(d.constant && d.group === "param")).slice(0, MAX_AXES);
  if (dims.length < 2) {
    box.append(empty("Parallel coordinates need two or more axes: numeric parameters that vary, " +
                     "parameters with a few distinct values, or metrics."));
    return;
  }
  const M = {t: 46, r: 64, b: 26, l: 64}, H = 400;
  const W = Math.max(box.clientWidth || 1200, M.l + M.r + 110 * (dims.length - 1));
  const step = (W - M.l - M.r) / (dims.length - 1);
  const x = (i) => M.l + i * step;
  for (const d of dims) {
    if (d.cats) {
      const n = d.cats.length, at = new Map(d.cats.map((c, i) => [c, i]));
      d.y = (v) => (at.has(v) ? H - M.b - (at.get(v) * (H - M.t - M.b)) / Math.max(n - 1, 1) : null);
    } else {
      const s = scale(d.ext[0], d.ext[1], H - M.b, M.t);
      d.y = (v) => (finite(v) ? s(v) : null);
    }
  }
  const svg = sv("svg", {class: "chart pc", width: W, height: H, viewBox: "0 0 " + W + " " + H,
                         role: "img", "aria-label": "parallel coordinates of the runs"});
  const colour = colouring(), runs = drawOrder(RUNS.filter(shown), colour);
  const opacity = runs.length <= 40 ? 0.85 : runs.length <= 400 ? 0.5 : 0.22;
  const lines = sv("g", {class: "lines"});
  for (const run of runs) {
    let d = "", pen = false;
    dims.forEach((dim, i) => {
      const y = dim.y(dim.get(run));
      if (y === null) { pen = false; return; }
      d += (pen ? "L" : "M") + x(i).toFixed(1) + "," + y.toFixed(1);
      pen = true;
    });
    if (d) lines.append(sv("path", {class: "run", d, stroke: colour.of(run), "stroke-opacity": opacity,
                                    "stroke-dasharray": run.status === "succeeded" ? null : "5 4"},
                            [tip(describe(run, colour))]));
  }
  svg.append(lines);
  dims.forEach((dim, i) => {
    const g = sv("g", {class: "axis"});
    g.append(sv("line", {x1: x(i), x2: x(i), y1: M.t, y2: H - M.b}));
    if (dim.cats) {
      axisLeft(g, dim.y, dim.cats, x(i), (c) => cut(c, 14));
    } else {
      axisLeft(g, dim.y, ticks(dim.ext[0], dim.ext[1], 5), x(i), (v) => fmt(v));
    }
    const chosen = dim.group === "metric" && dim.label === STATE.colour;
    const room = Math.max(Math.floor(step / 7.5), 6);  // characters between two axes
    const name = sv("text", {class: "name " + dim.group + (chosen ? " chosen" : ""), x: x(i), y: M.t - 18,
                             "text-anchor": "middle", text: cut(dim.label, room)},
                    [tip(dim.label + (dim.group === "metric" ? " (metric: click to colour by it)"
                                                             : " (parameter)"))]);
    if (dim.group === "metric") {
      name.addEventListener("click", () => { STATE.colour = dim.label; syncColour(); renderPlots(); });
    }
    g.append(name);
    svg.append(g);
  });
  box.append(svg);
}

function renderScatter(box) {
  box.replaceChildren();
  const xd = NUMERIC.find((d) => d.key === STATE.x), yd = NUMERIC.find((d) => d.key === STATE.y);
  if (!xd || !yd) {
    box.append(empty("A scatter plot needs two numeric parameters or metrics."));
    return;
  }
  const M = {t: 14, r: 24, b: 50, l: 80}, H = 440;
  const W = Math.max(Math.min(box.clientWidth || 1000, 1100), 480);
  const xe = padded(xd.ext, 0.03), ye = padded(yd.ext, 0.05);
  const xs = scale(xe[0], xe[1], M.l, W - M.r), ys = scale(ye[0], ye[1], H - M.b, M.t);
  const svg = sv("svg", {class: "chart scatter", width: W, height: H, viewBox: "0 0 " + W + " " + H,
                         role: "img", "aria-label": "scatter plot of the runs"});
  const g = sv("g", {class: "axis"});
  for (const v of ticks(xe[0], xe[1], 8)) {
    g.append(sv("line", {class: "gridline", x1: xs(v), x2: xs(v), y1: M.t, y2: H - M.b}));
    g.append(sv("text", {x: xs(v), y: H - M.b + 16, "text-anchor": "middle", text: fmt(v)}));
  }
  for (const v of ticks(ye[0], ye[1], 6)) {
    g.append(sv("line", {class: "gridline", x1: M.l, x2: W - M.r, y1: ys(v), y2: ys(v)}));
    g.append(sv("text", {x: M.l - 8, y: ys(v) + 4, "text-anchor": "end", text: fmt(v)}));
  }
  g.append(sv("path", {d: "M" + M.l + "," + M.t + "V" + (H - M.b) + "H" + (W - M.r)}));
  g.append(sv("text", {class: "label " + xd.group, x: (M.l + W - M.r) / 2, y: H - 10,
                       "text-anchor": "middle", text: cut(xd.label, 80)}));
  g.append(sv("text", {class: "label " + yd.group, x: 0, y: 0, "text-anchor": "middle",
                       text: cut(yd.label, 60),
                       transform: "translate(18," + (M.t + H - M.b) / 2 + ") rotate(-90)"}));
  svg.append(g);
  const colour = colouring(), runs = drawOrder(RUNS.filter(shown), colour);
  const r = runs.length > 1000 ? 2.5 : runs.length > 200 ? 3.5 : 5;
  const dots = sv("g", {class: "dots"});
  for (const run of runs) {
    const xv = xd.get(run), yv = yd.get(run);
    if (!finite(xv) || !finite(yv)) continue;
    const ok = run.status === "succeeded";
    const text = describe(run, colour) + "\n" + xd.label + " = " + fmt(xv, 6) + "\n" + yd.label + " = " +
      fmt(yv, 6);
    dots.append(sv("circle", {cx: xs(xv).toFixed(1), cy: ys(yv).toFixed(1), r,
                              class: ok ? null : "unsucceeded",
                              fill: ok ? colour.of(run) : "none", color: colour.of(run)}, [tip(text)]));
  }
  svg.append(dots);
  box.append(svg);
}

let syncColour = () => {};

function plotsSection(section) {
  const pc = el("div", {class: "scroll"}), scatter = el("div");
  const options = (select, dims, chosen) => {
    select.replaceChildren(...dims.map((d) => el("option", {value: d.key, text: cut(d.label, 60),
                                                            selected: d.key === chosen})));
  };
  const colourBy = el("select", {"aria-label": "colour by"});
  colourBy.replaceChildren(...COLS.metrics.map((m) => el("option", {value: m, text: cut(m, 60)})));
  const lo = el("span", {class: "muted"}), hi = el("span", {class: "muted"});
  const hint = el("span", {class: "muted"});
  const bar = el("span", {class: "gradient"});
  syncColour = () => {
    const stops = STATE.colour && goal(STATE.colour) === "min" ? VIRIDIS.slice().reverse() : VIRIDIS;
    bar.style.background = "linear-gradient(to right, " + stops.join(", ") + ")";
    colourBy.value = STATE.colour || "";
    const c = colouring();
    lo.textContent = c.ext ? fmt(c.ext[0]) : "";
    hi.textContent = c.ext ? fmt(c.ext[1]) : "";
    const better = STATE.colour && goal(STATE.colour) === "min" ? "lower is better" : "higher is better";
    hint.textContent = (STATE.colour ? better + " (going by its name); " : "") +
      "dashed lines and hollow points: runs that did not succeed";
  };
  colourBy.addEventListener("change", () => { STATE.colour = colourBy.value; syncColour(); renderPlots(); });
  const metricsFirst = NUMERIC.filter((d) => d.group === "metric");
  const paramsFirst = NUMERIC.filter((d) => d.group === "param" && !d.constant);
  STATE.x = (paramsFirst[0] || NUMERIC[0] || {}).key || null;
  const other = (d) => d.key !== STATE.x;
  STATE.y = (metricsFirst.find(other) || NUMERIC.find(other) || {}).key || null;
  const xs = el("select", {"aria-label": "x axis"}), ys = el("select", {"aria-label": "y axis"});
  options(xs, NUMERIC, STATE.x);
  options(ys, NUMERIC, STATE.y);
  xs.addEventListener("change", () => { STATE.x = xs.value; renderScatter(scatter); });
  ys.addEventListener("change", () => { STATE.y = ys.value; renderScatter(scatter); });
  section.append(
    el("div", {class: "toolbar"}, COLS.metrics.length
      ? [el("label", {}, ["colour by ", colourBy]), lo, bar, hi, hint]
      : [el("span", {class: "muted", text: "no metric recorded to colour by"})]),
    el("h3", {text: "Parallel coordinates"}), pc,
    el("h3", {text: "Scatter"}),
    el("div", {class: "toolbar"}, [el("label", {}, ["x ", xs]), el("label", {}, ["y ", ys])]), scatter);
  syncColour();
  return () => { renderParallel(pc); renderScatter(scatter); };
}
"""
