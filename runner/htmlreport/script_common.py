"""The page's JavaScript, part one: what every section uses. DOM building (text always through
text nodes and attributes, never parsed as markup), number formats, scales whose arithmetic
survives any finite number (a span past a float's range is taken in halves), ticks, colours.

The parts (script_*.py) are joined inside one function by page.py; each is plain JavaScript
in a Python string so that the page needs no package data and no file at run time.
"""
from __future__ import annotations

COMMON = r"""
"use strict";
const DATA = JSON.parse(document.getElementById("data").textContent);
// The SVG namespace, read from an inline <svg>: the page holds no address of any kind.
const SVG_NS = document.getElementById("svg-ns").namespaceURI;
const RUNS = DATA.runs;
const COLS = DATA.columns;
const BY_ID = new Map();
RUNS.forEach((run, i) => { run._i = i; BY_ID.set(run.id, run); });
const COLLATE = new Intl.Collator(undefined, {numeric: true, sensitivity: "base"});
const STATE = {filter: [], hidden: new Set(), sort: {key: "started", dir: -1}, limit: 500,
               colour: COLS.metrics[0] || null, x: null, y: null, logy: new Set()};

function build(node, attrs, kids) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class" && !(node instanceof SVGElement)) node.className = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const kid of kids || []) {
    if (kid !== null && kid !== undefined) node.append(kid);  // a string becomes a text node
  }
  return node;
}
const el = (tag, attrs, kids) => build(document.createElement(tag), attrs, kids);
const sv = (tag, attrs, kids) => build(document.createElementNS(SVG_NS, tag), attrs, kids);
const tip = (text) => sv("title", {text: text});

function finite(v) { return typeof v === "number" && isFinite(v); }

function fmt(v, digits) {
  if (!finite(v)) return "\u2013";
  const a = Math.abs(v);
  if (v !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(Math.max((digits || 4) - 2, 1));
  return String(Number(v.toPrecision(digits || 4)));
}

function duration(s) {
  if (!finite(s)) return "\u2013";
  if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.round((s % 3600) / 60) + " min";
}

const when = (iso) => (typeof iso === "string" ? iso.slice(0, 19).replace("T", " ") : "\u2013");
const shortId = (id) => id.slice(-6);
const cut = (text, n) => (text.length > n ? text.slice(0, Math.max(n - 1, 1)) + "\u2026" : text);

function extent(values) {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) { if (finite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; } }
  if (lo > hi) return null;
  if (lo === hi) {
    const pad = lo === 0 ? 1 : Math.abs(lo) / 10;  // one value: room on the side that has it
    return isFinite(hi + pad) && isFinite(lo - pad) ? [lo - pad, hi + pad]
      : lo > 0 ? [lo - 2 * pad, hi] : [lo, hi + 2 * pad];
  }
  return [lo, hi];
}

// a little room around the data, so that no point sits on the frame
function padded(ext, f) {
  const pad = (ext[1] / 2 - ext[0] / 2) * (2 * f);
  const lo = ext[0] - pad, hi = ext[1] + pad;
  return [isFinite(lo) ? lo : ext[0], isFinite(hi) ? hi : ext[1]];
}

// v in [d0, d1] -> [r0, r1]; in halves where d1 - d0 is past a float's range
function scale(d0, d1, r0, r1) {
  const half = !isFinite(d1 - d0);
  const span = half ? d1 / 2 - d0 / 2 : d1 - d0;
  return (v) => r0 + (half ? v / 2 - d0 / 2 : v - d0) / span * (r1 - r0);
}

function ticks(lo, hi, count) {
  const span = hi / 2 - lo / 2;
  if (!(span > 0)) return [lo];
  const raw = (span / count) * 2;
  let step = Math.pow(10, Math.floor(Math.log10(raw)));
  const ratio = raw / step;
  step *= ratio >= 7.5 ? 10 : ratio >= 3.5 ? 5 : ratio >= 1.5 ? 2 : 1;
  if (!finite(step) || step <= 0) return [lo, hi];
  const first = Math.ceil(lo / step), out = [];
  for (let k = 0; k <= 60; k++) {
    const v = (first + k) * step;
    if (!finite(v) || v > hi + step * 1e-9) break;
    out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  }
  return out.length ? out : [lo, hi];
}

const VIRIDIS = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779",
                 "#6ece58", "#b5de2b", "#fde725"];
function ramp(t) {
  const x = Math.min(Math.max(t, 0), 1) * (VIRIDIS.length - 1), i = Math.min(Math.floor(x), 8);
  const a = VIRIDIS[i], b = VIRIDIS[i + 1], f = x - i;
  const mix = (k) => Math.round(parseInt(a.substr(k, 2), 16) * (1 - f) + parseInt(b.substr(k, 2), 16) * f);
  return "rgb(" + mix(1) + "," + mix(3) + "," + mix(5) + ")";
}

const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
                 "#ff9da7", "#9c755f", "#7f7f7f"];
const CURVED = RUNS.filter((r) => Object.keys(r.series).length);
const CURVE_INDEX = new Map(CURVED.map((r, i) => [r.id, i]));
function runColour(run) {
  const i = CURVE_INDEX.has(run.id) ? CURVE_INDEX.get(run.id) : run._i;
  return i < PALETTE.length ? PALETTE[i] : "hsl(" + Math.round((i * 137.508) % 360) + ",55%,45%)";
}

function isNumberParam(name) { return COLS.parameter_kinds[name] === "number"; }
function paramValue(run, name) {
  const text = run.parameters[name];
  if (text === undefined) return null;
  return isNumberParam(name) ? Number(text) : text;
}
const goal = (metric) => COLS.metric_goals[metric] || "max";

// the parameters whose values differ between runs, for short labels of runs
const VARYING = COLS.parameters.filter((p) => new Set(RUNS.map((r) => r.parameters[p])).size > 1);
function runLabel(run) {
  const parts = VARYING.slice(0, 3).filter((p) => p in run.parameters)
    .map((p) => p + "=" + cut(run.parameters[p], 16));
  return shortId(run.id) + (parts.length ? " " + parts.join(" ") : "");
}

function searchText(run) {
  if (run._text === undefined) {
    const bits = [run.id, run.entry_point, run.status, run.backend, run.commit || "",
                  run.reason || ""];
    for (const [k, v] of Object.entries(run.parameters)) bits.push(k + "=" + v);
    for (const [k, v] of Object.entries(run.logged_params)) bits.push(k + "=" + v);
    if (run.sweep) bits.push(run.sweep.id, run.sweep.name || "");
    run._text = bits.join(" ").toLowerCase();
  }
  return run._text;
}
const shown = (run) => STATE.filter.every((word) => searchText(run).includes(word));

function axisLeft(g, y, values, x, label) {
  for (const v of values) {
    g.append(sv("line", {class: "tick", x1: x - 4, x2: x, y1: y(v), y2: y(v)}));
    g.append(sv("text", {x: x - 6, y: y(v) + 4, "text-anchor": "end", text: label(v)}));
  }
}

function statusChip(status) {
  return el("span", {class: "chip status-" + status, text: status});
}

function empty(text) { return el("p", {class: "empty", text: text}); }
"""
