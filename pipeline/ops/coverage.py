"""The coverage page: ``taxi-pipeline status --html FILE`` as one self-contained HTML file.

A grid of months (rows) x services (columns), each cell coloured by the month's state, the
way orchestrators show partitions. Hovering a cell (or focusing it with the keyboard) shows
its rows at each stage and its quality counts; a click pins it. Everything is inline (CSS,
script, the data as JSON): the page opens from disk, sends no request, needs no CDN.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import luigi

from pipeline.convert.quality import CHECKS
from pipeline.ops import status
from pipeline.ops.month_state import MonthState

# Cell classes, most urgent first, from the month's state (``pipeline.ops.status``: the
# same values, never matched as text).
STATES: dict[str, tuple[str, str]] = {
    # key: (legend, colour)
    "unknown": (status.COULD_NOT_TELL, "#34495e"),
    "republished": (status.REPUBLISHED, "#8e44ad"),
    "mismatch": (status.MISMATCH, "#c0392b"),
    "missing": (status.STAGE_MISSING, "#e67e22"),
    "not-ingested": (status.NOT_INGESTED, "#d35400"),
    "not-published": (status.NOT_PUBLISHED, "#95a5a6"),
    "quality": ("complete, quality warning", "#f1c40f"),
    "complete": (status.COMPLETE, "#27ae60"),
    # Not a problem, and not a month of the dataset: a blank cell.
    "before": (status.BEFORE_START, "#ffffff"),
}
_CLASS_OF: dict[MonthState, str] = {
    MonthState.COULD_NOT_TELL: "unknown", MonthState.REPUBLISHED: "republished",
    MonthState.MISMATCH: "mismatch", MonthState.STAGE_MISSING: "missing",
    MonthState.NOT_INGESTED: "not-ingested", MonthState.NOT_PUBLISHED: "not-published",
    MonthState.COMPLETE: "complete", MonthState.BEFORE_START: "before"}


def month_state(record: dict) -> MonthState:
    """The state of a status record (its ``state`` is a MonthState's value, never free
    text); a record without one reads as could not tell."""
    try:
        return MonthState(record.get("state"))
    except ValueError:
        return MonthState.COULD_NOT_TELL


def cell_state(record: dict) -> str:
    """The colour class of one month of one service, from its status record's state."""
    state = _CLASS_OF[month_state(record)]
    if state == "complete" and record.get("quality_warnings"):
        return "quality"
    return state


def render(records: list[dict], title: str = "NYC taxi months: coverage") -> str:
    """The page for ``records`` (``pipeline.ops.status.as_records``)."""
    months = sorted({r["month"] for r in records})
    services = list(dict.fromkeys(r["service"] for r in records))
    by_cell = {(r["month"], r["service"]): r for r in records}
    tally = Counter(cell_state(r) for r in records)
    rows = []
    for month in months:
        cells = []
        for service in services:
            record = by_cell.get((month, service))
            if record is None:
                cells.append('<td class="empty"></td>')
                continue
            state = cell_state(record)
            key = f"{month} {service}"
            cells.append(
                f'<td class="cell {state}" data-key="{html.escape(key)}" data-state="{state}" '
                f'tabindex="0" title="{html.escape(key + ": " + str(record["state"]))}">'
                f"{_short(record)}</td>")
        rows.append(f'<tr><th scope="row">{month}</th>{"".join(cells)}</tr>')
    legend = "".join(
        f'<li><span class="swatch {state}"></span>{html.escape(label)} '
        f'<b data-count="{state}">{tally.get(state, 0)}</b></li>'
        for state, (label, _) in STATES.items())
    colours = "\n".join(f".{state} {{ background: {colour}; }}"
                        for state, (_, colour) in STATES.items())
    data = {f"{r['month']} {r['service']}": _details(r) for r in records}
    return _PAGE.format(
        title=html.escape(title),
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        colours=colours,
        legend=legend,
        header="".join(f'<th scope="col">{html.escape(s)}</th>' for s in services),
        rows="\n".join(rows),
        cells=len(records),
        months=len(months),
        services=len(services),
        # "</" cannot end the script element early once "<" is escaped.
        data=json.dumps(data, sort_keys=True).replace("<", "\\u003c"),
        checks=json.dumps(CHECKS).replace("<", "\\u003c"),
    )


def write_page(path: Path, records: list[dict]) -> None:
    """Write the page to ``path`` atomically."""
    # Atomic (a temporary file renamed into place), like every output of the pipeline.
    with luigi.LocalTarget(str(path.absolute())).open("w") as page:
        page.write(render(records))


def _short(record: dict) -> str:
    rows = record.get("parquet_rows")
    if rows is None or month_state(record) is MonthState.BEFORE_START:
        return "&ndash;"
    return f"{rows / 1e6:.1f}M" if rows >= 100_000 else f"{rows / 1e3:.0f}k"


def _details(record: dict) -> dict:
    stages: list[list[object]] = [
        ["raw file (bytes)", record.get("raw_bytes")],
        ["parquet rows", record.get("parquet_rows")],
        *([f"{sink} rows", rows] for sink, rows in record.get("sinks", {}).items()),
    ]
    detail = record.get("detail")
    state = str(record.get("state")) + (f": {detail}" if detail and detail != record.get("state")
                                        else "")
    return {"state": state, "class": cell_state(record), "stages": stages,
            "quality": record.get("quality"), "warnings": record.get("quality_warnings", [])}


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }}
h1 {{ font-size: 1.3em; margin: 0 0 .2em; }}
.meta {{ color: #666; margin: 0 0 1em; }}
.layout {{ display: flex; gap: 2em; align-items: flex-start; }}
table.grid {{ border-collapse: separate; border-spacing: 3px; }}
table.grid th {{ font-weight: 600; padding: 2px 8px; text-align: left; }}
td.cell {{ width: 5.5em; height: 1.8em; text-align: center; color: #fff; cursor: pointer;
  border-radius: 3px; font-size: 12px; text-shadow: 0 0 2px rgba(0,0,0,.5); }}
td.cell:hover, td.cell:focus, td.cell.pinned {{ outline: 3px solid #222; }}
.quality {{ color: #222 !important; text-shadow: none !important; }}
{colours}
ul.legend {{ list-style: none; padding: 0; margin: 0 0 1em; display: flex; flex-wrap: wrap;
  gap: 1em; }}
.swatch {{ display: inline-block; width: 1em; height: 1em; border-radius: 2px;
  vertical-align: -2px; margin-right: .3em; }}
#detail {{ min-width: 22em; border: 1px solid #ccc; border-radius: 4px; padding: .8em 1em;
  position: sticky; top: 1em; background: #fafafa; }}
#detail table {{ border-collapse: collapse; width: 100%; }}
#detail td {{ padding: 1px 6px; border-bottom: 1px solid #eee; }}
#detail td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
#detail tr.warn td {{ background: #fdf2c4; font-weight: 600; }}
#detail h2 {{ font-size: 1.1em; margin: 0 0 .3em; }}
#detail h3 {{ font-size: 1em; margin: .8em 0 .2em; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="meta">{cells} cells ({months} months &times; {services} services), generated
{generated} by <code>taxi-pipeline status --html</code>. Hover over a cell for its rows at
each stage and its quality counts; click to pin it.</p>
<ul class="legend">{legend}</ul>
<div class="layout">
<table class="grid" id="grid">
<thead><tr><th></th>{header}</tr></thead>
<tbody>
{rows}
</tbody>
</table>
<div id="detail" aria-live="polite"><p class="hint">No cell selected.</p></div>
</div>
<script type="application/json" id="cells">{data}</script>
<script type="application/json" id="checks">{checks}</script>
<script>
(function () {{
  "use strict";
  var cells = JSON.parse(document.getElementById("cells").textContent);
  var checks = JSON.parse(document.getElementById("checks").textContent);
  var detail = document.getElementById("detail");
  var pinned = null;
  function number(value) {{
    if (value === null || value === undefined) return "\\u2013";
    return Number(value).toLocaleString("en-US");
  }}
  function row(table, label, value, warn) {{
    var tr = table.insertRow();
    if (warn) tr.className = "warn";
    tr.insertCell().textContent = label;
    var td = tr.insertCell();
    td.className = "n";
    td.textContent = number(value);
  }}
  function show(key) {{
    var cell = cells[key];
    if (!cell) return;
    detail.textContent = "";
    detail.dataset.key = key;
    var h = document.createElement("h2");
    h.textContent = key;
    detail.appendChild(h);
    var state = document.createElement("p");
    state.className = "state";
    state.textContent = cell.state;
    detail.appendChild(state);
    var h3 = document.createElement("h3");
    h3.textContent = "rows per stage";
    detail.appendChild(h3);
    var stages = document.createElement("table");
    stages.className = "stages";
    cell.stages.forEach(function (s) {{ row(stages, s[0], s[1], false); }});
    detail.appendChild(stages);
    var h3q = document.createElement("h3");
    h3q.textContent = "quality (rows per check)";
    detail.appendChild(h3q);
    if (!cell.quality) {{
      var none = document.createElement("p");
      none.textContent = "not counted (no manifest, or written before the checks)";
      detail.appendChild(none);
      return;
    }}
    var quality = document.createElement("table");
    quality.className = "quality-counts";
    Object.keys(checks).forEach(function (name) {{
      if (!(name in cell.quality)) return;
      row(quality, checks[name], cell.quality[name], cell.warnings.indexOf(name) >= 0);
    }});
    detail.appendChild(quality);
  }}
  var grid = document.getElementById("grid");
  grid.addEventListener("mouseover", function (e) {{
    var td = e.target.closest("td.cell");
    if (td && !pinned) show(td.dataset.key);
  }});
  grid.addEventListener("focusin", function (e) {{
    var td = e.target.closest("td.cell");
    if (td && !pinned) show(td.dataset.key);
  }});
  grid.addEventListener("click", function (e) {{
    var td = e.target.closest("td.cell");
    if (!td) return;
    if (pinned) pinned.classList.remove("pinned");
    pinned = pinned === td ? null : td;
    if (pinned) pinned.classList.add("pinned");
    show(td.dataset.key);
  }});
}})();
</script>
</body>
</html>
"""
