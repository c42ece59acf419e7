"""The page: the data (data.py) -> one self-contained HTML document, opened offline from file://.

Pure. Nothing of a record reaches the markup: the data goes in once, as JSON inside
`<script type="application/json">`, with `<`, `>`, `&` and the line separators written as
\\u escapes, so that no value can end the element or start one; the script builds the page from
it with text nodes and attributes only. The page's Content-Security-Policy lets nothing be
fetched and runs only its own two scripts (by their hashes), a second wall should a value ever
get through. MARKER tells a page this command wrote, which it may overwrite, from any other file.
"""
from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from mlproject.runner.htmlreport.script_common import COMMON
from mlproject.runner.htmlreport.script_curves import CURVES
from mlproject.runner.htmlreport.script_main import GUARD, MAIN
from mlproject.runner.htmlreport.script_plots import PLOTS
from mlproject.runner.htmlreport.script_table import TABLE
from mlproject.runner.htmlreport.style import CSS

MARKER = '<meta name="generator" content="mlproject report --html">'
SCRIPT = "(function () {" + COMMON + TABLE + PLOTS + CURVES + MAIN + "})();\n"

_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}

_BODY = """\
<pre id="errors" hidden></pre>
<svg id="svg-ns" width="0" height="0" aria-hidden="true"></svg>
<header class="top">
<h1 id="title">Runs</h1>
<div class="sub" id="sub"></div>
<div class="chips" id="statuses"></div>
<nav><a href="#runs">Runs</a><a href="#params">Parameters against metrics</a><a
href="#curves">Curves</a><a href="#sweeps">Sweeps</a></nav>
</header>
<noscript><p class="notes">This page draws its tables and charts with JavaScript, which is off.</p></noscript>
<main>
<div id="notes"></div>
<section id="runs"><h2>Runs</h2></section>
<section id="params"><h2>Parameters against metrics</h2></section>
<section id="curves"><h2>Curves</h2></section>
<section id="sweeps"><h2>Sweeps</h2></section>
<section id="unreadable" hidden><h2>Runs without a usable record</h2></section>
</main>
<footer>Written by <code>mlproject report --html</code>: a static page; nothing is fetched.</footer>
"""


def data_json(data: Mapping[str, Any]) -> str:
    """`data` as JSON text that is safe inside a script element (and still JSON)."""
    text = json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    for char, escape in _ESCAPES.items():
        text = text.replace(char, escape)
    return text


def render(data: Mapping[str, Any]) -> str:
    policy = ("default-src 'none'; img-src data:; "
              f"style-src {_hash(CSS)}; script-src {_hash(GUARD)} {_hash(SCRIPT)}; "
              "base-uri 'none'; form-action 'none'")
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n", MARKER, "\n",
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">\n',
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
        '<meta name="referrer" content="no-referrer">\n',
        "<title>Runs \u00b7 mlproject</title>\n",
        "<style>", CSS, "</style>\n</head>\n<body>\n", _BODY,
        '<script type="application/json" id="data">', data_json(data), "</script>\n",
        "<script>", GUARD, "</script>\n",
        "<script>", SCRIPT, "</script>\n</body>\n</html>\n",
    ])


def _hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"
