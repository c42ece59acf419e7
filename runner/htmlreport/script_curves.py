"""The page's JavaScript, part four: the curves. For each metric some run logged as a series, a
line chart of every such run (the step on x; a point's position where it was logged without a
step), with a legend: a click on a run hides it in every chart (and shows it again), hovering it
picks its line out; a log scale where every value is positive. The table's filter applies.
"""
from __future__ import annotations

CURVES = r"""
function xOf(points) {
  return points.map((p, i) => (p[0] === null ? i : p[0]));
}

function renderCurve(card, metric) {
  const chart = card.querySelector(".plot"), legend = card.querySelector(".legend");
  chart.replaceChildren();
  legend.replaceChildren();
  const all = CURVED.filter((r) => r.series[metric] && shown(r));
  const runs = all.filter((r) => !STATE.hidden.has(r.id));
  const log = STATE.logy.has(metric);
  const yv = (v) => (log ? (v > 0 ? Math.log10(v) : null) : v);
  const xe = extent(runs.flatMap((r) => xOf(r.series[metric])));
  const yRaw = extent(runs.flatMap((r) => r.series[metric].map((p) => yv(p[1]))));
  const ye = yRaw && padded(yRaw, 0.04);
  const M = {t: 12, r: 16, b: 42, l: 70}, H = 300;
  const W = Math.max(chart.clientWidth || 600, 360);
  const svg = sv("svg", {class: "chart curve", width: W, height: H, viewBox: "0 0 " + W + " " + H,
                         role: "img", "aria-label": "curves of " + metric});
  if (!xe || !ye) {
    svg.append(sv("text", {x: W / 2, y: H / 2, "text-anchor": "middle", class: "muted",
                           text: all.length ? "every run is hidden" : "no run matches the filter"}));
  } else {
    const xs = scale(xe[0], xe[1], M.l, W - M.r), ys = scale(ye[0], ye[1], H - M.b, M.t);
    const g = sv("g", {class: "axis"});
    for (const v of ticks(xe[0], xe[1], 7)) {
      if (!Number.isInteger(v)) continue;  // steps and positions are whole numbers
      g.append(sv("line", {class: "gridline", x1: xs(v), x2: xs(v), y1: M.t, y2: H - M.b}));
      g.append(sv("text", {x: xs(v), y: H - M.b + 16, "text-anchor": "middle", text: fmt(v)}));
    }
    for (const v of ticks(ye[0], ye[1], 5)) {
      g.append(sv("line", {class: "gridline", x1: M.l, x2: W - M.r, y1: ys(v), y2: ys(v)}));
      g.append(sv("text", {x: M.l - 8, y: ys(v) + 4, "text-anchor": "end",
                           text: log ? fmt(Math.pow(10, v)) : fmt(v)}));
    }
    g.append(sv("path", {d: "M" + M.l + "," + M.t + "V" + (H - M.b) + "H" + (W - M.r)}));
    const stepless = runs.some((r) => r.series[metric].some((p) => p[0] === null));
    g.append(sv("text", {class: "label", x: (M.l + W - M.r) / 2, y: H - 8, "text-anchor": "middle",
                         text: stepless ? "step (or the point's position, where none was logged)" : "step"}));
    svg.append(g);
    const lines = sv("g", {class: "lines"});
    for (const run of runs) {
      const points = run.series[metric], xsOf = xOf(points);
      let d = "", pen = false;
      points.forEach((p, i) => {
        const y = yv(p[1]);
        if (y === null) { pen = false; return; }
        d += (pen ? "L" : "M") + xs(xsOf[i]).toFixed(1) + "," + ys(y).toFixed(1);
        pen = true;
      });
      const last = points[points.length - 1];
      const at = last[0] === null ? points.length - 1 : last[0];
      const title = tip(runLabel(run) + "\n" + run.id + "\nlast: " + fmt(last[1], 6) + " at step " + at);
      const colour = runColour(run);
      if (points.length === 1 && yv(last[1]) !== null) {
        lines.append(sv("circle", {"data-run": run.id, cx: xs(xsOf[0]), cy: ys(yv(last[1])), r: 3.5,
                                   fill: colour}, [title]));
      } else if (d) {
        lines.append(sv("path", {class: "run", "data-run": run.id, d, stroke: colour}, [title]));
      }
    }
    svg.append(lines);
  }
  chart.append(svg);
  for (const run of all) {
    const off = STATE.hidden.has(run.id);
    const swatch = el("span", {class: "swatch"});
    swatch.style.background = runColour(run);
    const item = el("button", {class: "item" + (off ? " off" : ""), type: "button",
                               title: run.id + (off ? " (hidden: click to show)" : " (click to hide)"),
                               "aria-pressed": off ? "false" : "true"}, [swatch, cut(runLabel(run), 48)]);
    item.addEventListener("click", () => {
      if (off) STATE.hidden.delete(run.id); else STATE.hidden.add(run.id);
      renderCurves();
    });
    item.addEventListener("mouseenter", () => {
      svg.classList.add("picking");
      for (const n of svg.querySelectorAll("[data-run]")) {
        n.classList.toggle("picked", n.getAttribute("data-run") === run.id);
      }
    });
    item.addEventListener("mouseleave", () => svg.classList.remove("picking"));
    legend.append(item);
  }
}

let CURVE_CARDS = [];
function renderCurves() { for (const [card, metric] of CURVE_CARDS) renderCurve(card, metric); }

function curvesSection(section) {
  if (!COLS.series.length) {
    section.append(empty("No run logged a series: a step logs one with " +
                         "`from mlproject import log; log.metric(\"loss\", value, step=epoch)`."));
    return () => {};
  }
  const every = el("button", {type: "button", text: "show every run",
                              onclick: () => { STATE.hidden.clear(); renderCurves(); }});
  const hideAll = () => { CURVED.forEach((r) => STATE.hidden.add(r.id)); renderCurves(); };
  const none = el("button", {type: "button", text: "hide every run", onclick: hideAll});
  const grid = el("div", {class: "grid"});
  const how = el("span", {class: "muted", text: "click a run in a legend to hide or show it in every chart"});
  section.append(el("div", {class: "toolbar"}, [every, none, how]), grid);
  for (const metric of COLS.series) {
    const positive = CURVED.every((r) => !r.series[metric] || r.series[metric].every((p) => p[1] > 0));
    const toggle = el("label", {class: "muted small"}, [el("input", {type: "checkbox", disabled: !positive,
      onchange: (e) => {
        if (e.target.checked) STATE.logy.add(metric); else STATE.logy.delete(metric);
        renderCurves();
      }}), " log scale"]);
    const head = el("div", {class: "cardhead"}, [el("h3", {text: cut(metric, 80), title: metric}), toggle]);
    const card = el("div", {class: "card"}, [head, el("div", {class: "plot"}), el("div", {class: "legend"})]);
    grid.append(card);
    CURVE_CARDS.push([card, metric]);
  }
  return renderCurves;
}
"""
