"""The page's stylesheet: the system's own fonts (nothing is fetched), colours as variables with a
dark variant, tables that scroll inside their box with a header that stays, charts in cards."""
from __future__ import annotations

CSS = r"""
:root { --fg: #1f2328; --muted: #59636e; --bg: #ffffff; --panel: #f6f8fa; --line: #d1d9e0;
  --grid: #eef1f4; --axis: #6e7781; --accent: #0969da; --row: #f6f8fa;
  --param: #ddf4ff; --param-fg: #0550ae; --logged: #fbefff; --logged-fg: #8250df;
  --metric: #dafbe1; --metric-fg: #116329; --best: #aceebb; --warn: #fff8c5; --warn-line: #d4a72c;
  color-scheme: light dark; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6edf3; --muted: #9198a1; --bg: #0d1117; --panel: #151b23; --line: #3d444d;
    --grid: #262c36; --axis: #8b949e; --accent: #4493f8; --row: #151b23;
    --param: #0c2d6b; --param-fg: #79c0ff; --logged: #3c1e70; --logged-fg: #d2a8ff;
    --metric: #0f3d1d; --metric-fg: #7ee787; --best: #196c2e; --warn: #3b2e00; --warn-line: #9e6a03; } }
* { box-sizing: border-box; }
html { background: var(--bg); }
body { margin: 0; color: var(--fg); background: var(--bg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
#svg-ns { position: absolute; width: 0; height: 0; }
header.top { padding: 22px 32px 14px; background: var(--panel); border-bottom: 1px solid var(--line); }
h1 { margin: 0 0 2px; font-size: 24px; font-weight: 650; letter-spacing: -0.01em; }
h2 { margin: 0 0 12px; padding-bottom: 6px; font-size: 19px; border-bottom: 1px solid var(--line); }
h3 { margin: 18px 0 8px; font-size: 15px; }
.sub, .muted { color: var(--muted); }
.small { font-size: 12px; }
nav { margin-top: 10px; }
nav a { margin-right: 18px; color: var(--accent); text-decoration: none; font-weight: 500; }
nav a:hover { text-decoration: underline; }
main { padding: 4px 32px 48px; max-width: 1680px; }
section { margin-top: 30px; }
footer { padding: 16px 32px 32px; color: var(--muted); font-size: 12px; }
.mono { font-family: ui-monospace, SFMono-Regular, "DejaVu Sans Mono", Menlo, Consolas, monospace;
  font-size: 12px; }
.chips { margin: 8px 0 0; }
.chip { display: inline-block; padding: 1px 9px; border-radius: 999px; font-size: 12px; font-weight: 500;
  background: var(--grid); color: var(--muted); white-space: nowrap; }
.status-succeeded { background: #dafbe1; color: #116329; }
.status-failed, .status-crashed, .status-corrupt, .status-oom { background: #ffebe9; color: #a40e26; }
.status-running, .status-queued { background: #ddf4ff; color: #0550ae; }
.status-timeout { background: #fff8c5; color: #7d4e00; }
.status-cancelled, .status-interrupted { background: #eff2f5; color: #59636e; }
.notes { margin: 16px 0 0; padding: 10px 14px; background: var(--warn); border: 1px solid var(--warn-line);
  border-radius: 6px; }
.notes ul { margin: 4px 0 0; padding-left: 20px; }
#errors { margin: 0; padding: 12px 32px; background: #ffebe9; color: #a40e26; white-space: pre-wrap;
  border-bottom: 1px solid #ff818266; font: 13px/1.4 ui-monospace, monospace; }
#errors[hidden] { display: none; }
.toolbar { display: flex; flex-wrap: wrap; align-items: center; gap: 10px 14px; margin: 6px 0 10px; }
input[type=search] { min-width: 380px; padding: 6px 10px; font: inherit; color: var(--fg);
  background: var(--bg); border: 1px solid var(--line); border-radius: 6px; }
input[type=search]:focus { outline: 2px solid var(--accent); outline-offset: -1px; }
select, button { font: inherit; font-size: 13px; padding: 3px 8px; color: var(--fg); background: var(--bg);
  border: 1px solid var(--line); border-radius: 6px; cursor: pointer; }
button:hover { background: var(--panel); }
.key span { display: inline-block; margin-right: 6px; padding: 0 7px; border-radius: 4px; font-size: 12px; }
.key .param { background: var(--param); color: var(--param-fg); }
.key .logged { background: var(--logged); color: var(--logged-fg); }
.key .metric { background: var(--metric); color: var(--metric-fg); }
.key .best { background: var(--best); font-weight: 600; }
.tablewrap { max-height: 620px; overflow: auto; border: 1px solid var(--line); border-radius: 8px; }
.tablewrap.short { max-height: 420px; }
table.runs { border-collapse: separate; border-spacing: 0; min-width: 100%; font-size: 13px; }
table.runs th { position: sticky; top: 0; z-index: 1; padding: 7px 12px; text-align: left; font-weight: 600;
  white-space: nowrap; background: var(--panel); border-bottom: 1px solid var(--line); cursor: pointer;
  user-select: none; }
table.runs th.param { background: var(--param); color: var(--param-fg); }
table.runs th.logged { background: var(--logged); color: var(--logged-fg); }
table.runs th.metric { background: var(--metric); color: var(--metric-fg); }
table.runs th.num { text-align: right; }
table.runs th:focus-visible { outline: 2px solid var(--accent); outline-offset: -2px; }
table.runs th .arrow { font-size: 10px; }
table.runs td { max-width: 240px; padding: 5px 12px; overflow: hidden; text-overflow: ellipsis;
  white-space: nowrap; border-bottom: 1px solid var(--grid); }
table.runs td.wrap { white-space: normal; }
table.runs tbody tr:nth-child(even) td { background: var(--row); }
table.runs tbody tr:hover td { background: var(--param); }
table.runs td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.runs td.best, table.runs tr.best td { background: var(--best); font-weight: 600; }
table.sweep td.key { font-weight: 600; }
button.more { margin-top: 8px; }
.scroll { overflow-x: auto; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(600px, 1fr)); gap: 16px; }
.card { min-width: 0; padding: 10px 16px 12px; background: var(--bg); border: 1px solid var(--line);
  border-radius: 8px; }
.sweepcard { margin-bottom: 16px; }
.cardhead { display: flex; align-items: baseline; justify-content: space-between; gap: 12px; }
.cardhead h3 { margin: 4px 0; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.gradient { display: inline-block; width: 160px; height: 10px; border-radius: 3px; }
svg.chart { display: block; max-width: none; }
svg.chart text { fill: var(--fg); font-size: 11px; paint-order: stroke; stroke: var(--bg); stroke-width: 3px;
  stroke-linejoin: round; }
svg.chart text.name { font-size: 12px; font-weight: 600; }
svg.chart text.name.param, svg.chart text.label.param { fill: var(--param-fg); }
svg.chart text.name.metric, svg.chart text.label.metric { fill: var(--metric-fg); cursor: pointer; }
svg.chart text.name.chosen { text-decoration: underline; }
svg.chart text.label { font-size: 12px; font-weight: 600; }
svg.chart .axis line, svg.chart .axis path { stroke: var(--axis); fill: none; }
svg.chart .axis line.gridline { stroke: var(--grid); }
svg.chart path.run { fill: none; stroke-width: 1.6; stroke-linejoin: round; stroke-linecap: round; }
svg.pc path.run:hover { stroke-width: 3.5; stroke-opacity: 1; }
svg.curve path.run { stroke-width: 1.8; }
svg.curve path.run:hover { stroke-width: 3.5; }
svg.curve.picking [data-run] { opacity: 0.12; }
svg.curve.picking [data-run].picked { opacity: 1; stroke-width: 3.5; }
svg.scatter circle { stroke: var(--bg); stroke-width: 0.8; fill-opacity: 0.9; }
svg.scatter circle.unsucceeded { stroke: currentColor; stroke-width: 1.6; }
svg.scatter circle:hover { stroke: var(--fg); stroke-width: 1.5; }
.legend { display: flex; flex-wrap: wrap; gap: 2px 6px; max-height: 100px; margin-top: 6px; overflow: auto; }
.legend .item { display: inline-flex; align-items: center; gap: 6px; padding: 1px 7px; font-size: 12px;
  border: 1px solid transparent; border-radius: 4px; background: none; }
.legend .item:hover { border-color: var(--line); }
.legend .item.off { opacity: 0.45; text-decoration: line-through; }
.swatch { display: inline-block; width: 16px; height: 4px; border-radius: 2px; }
.empty { color: var(--muted); font-style: italic; }
"""
