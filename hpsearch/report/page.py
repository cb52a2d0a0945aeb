"""The HTML report: one self-contained file that works offline.

plotly.js is embedded once (no CDN: a report is read on laptops, on trains and in archives
long after the search), gzipped and base64-encoded: 1.96 MB instead of 4.8 MB, unpacked by
the browser's ``DecompressionStream`` (Chromium 80, Firefox 113, Safari 16.4 and later)
when the page opens. The figures' data is one compact JSON block: the plotly template they
share once, numbers to 6 significant digits. Each figure is a ``div`` drawn from it. Text
sections carry the same facts as the terminal report; a sortable table lists every trial.
The size budget (docs/benchmarks.md): 2.1 MB for a 40-trial search.
"""

from __future__ import annotations

import html
import json
import logging
import math
from functools import cache
from pathlib import Path
from typing import Any

from hpsearch.core.files import write_atomic
from hpsearch.core.records import rank
from hpsearch.report.analysis import Report, StageReport
from hpsearch.report.blocks import (
    best_trials,
    counts_line,
    final_table,
    region_table,
    thin_region_text,
)
from hpsearch.report.figures import (
    draw_curves,
    draw_pair,
    draw_progress,
    draw_slice,
    stage_colors,
)
from hpsearch.report.plotdata import (
    Progress,
    curve_data,
    epochs_spent,
    pair_data,
    progress,
    slice_data,
    subsample,
    trials,
)
from hpsearch.report.terminal import format_state

log = logging.getLogger(__name__)

#: Diagnostics shown as table columns when any trial recorded them.
DIAGNOSTICS = (
    "val_accuracy",
    "not_learning",
    "flat_then_drop",
    "overfit_gap",
    "dead_unit_fraction",
    "fail_reason",
)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1300px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; } h3 { font-size: 15px; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 14px; }
th, td { padding: 3px 8px; border-bottom: 1px solid #ddd; text-align: left; }
th { background: #f3f3f3; }
#trials th { cursor: pointer; position: sticky; top: 0; }
.warn { background: #fff6e0; border-left: 4px solid #f0a000; padding: 6px 10px; margin: 4px 0;
  white-space: pre-wrap; }
.ok { color: #2a7; } .muted { color: #777; } code { font-size: 13px; }
.state { margin: 2px 0; font-weight: 600; }
.imp { display: inline-block; height: 10px; background: #636efa; vertical-align: middle; }
.scroll { max-height: 600px; overflow: auto; }
"""

SORT_JS = """
document.querySelectorAll('#trials th').forEach(function (th, col) {
  th.addEventListener('click', function () {
    var body = document.querySelector('#trials tbody');
    var rows = Array.prototype.slice.call(body.rows);
    var dir = th.dataset.dir === 'asc' ? -1 : 1; th.dataset.dir = dir > 0 ? 'asc' : 'desc';
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
      var nx = parseFloat(x), ny = parseFloat(y);
      if (!isNaN(nx) && !isNaN(ny)) return dir * (nx - ny);
      return dir * String(x).localeCompare(String(y));
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


#: What every figure is drawn with.
PLOT_CONFIG = {"displaylogo": False, "responsive": True}
#: Significant digits the figures' numbers keep: far past what a plot or its hover shows.
DIGITS = 6

#: Unpacks plotly.js, then draws every figure from the page's JSON block.
DRAW_JS = """
(function () {
  var figures = JSON.parse(document.getElementById('hp-figures').textContent);
  function say(text) {
    figures.figures.forEach(function (f) {
      document.getElementById(f.id).textContent = text;
    });
  }
  function draw() {
    figures.figures.forEach(function (f) {
      f.layout.template = figures.template;
      Plotly.newPlot(f.id, f.data, f.layout, figures.config);
    });
  }
  if (typeof DecompressionStream === 'undefined') {
    say('This browser cannot unpack the figures (it lacks DecompressionStream): ' +
        'open the report in a current Chromium, Firefox or Safari.');
    return;
  }
  var packed = atob(document.getElementById('hp-plotly').textContent);
  var bytes = new Uint8Array(packed.length);
  for (var i = 0; i < packed.length; i++) bytes[i] = packed.charCodeAt(i);
  var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
  new Response(stream).text().then(function (code) {
    var script = document.createElement('script');
    script.textContent = code;
    document.head.appendChild(script);
    draw();
  }).catch(function (err) { say('The figures could not be drawn: ' + err); });
})();
"""


def _compact(x: Any) -> Any:
    """Plotly's JSON form of a figure with its floats cut to :data:`DIGITS` digits."""
    if isinstance(x, float):
        return float(f"{x:.{DIGITS}g}") if math.isfinite(x) else None
    if isinstance(x, list):
        return [_compact(v) for v in x]
    if isinstance(x, dict):
        return {k: _compact(v) for k, v in x.items()}
    return x


def figures_json(figs: list[Any]) -> tuple[list[str], str]:
    """Each figure's ``div`` and the one JSON block they are drawn from: the template
    they share stored once, the data compact (no spaces, short numbers)."""
    import plotly.io as pio

    divs, out, template = [], [], None
    for i, fig in enumerate(figs):
        spec = json.loads(pio.to_json(fig, validate=False, engine="json"))
        layout = spec.get("layout", {})
        template = layout.pop("template", template)
        div_id = f"figure-{i}"
        height = layout.get("height")
        style = f"height:{height}px; width:100%;" if height else "height:100%; width:100%;"
        divs.append(f'<div id="{div_id}" class="plotly-graph-div" style="{style}"></div>')
        out.append(
            {"id": div_id, "data": _compact(spec.get("data", [])), "layout": _compact(layout)}
        )
    block = {"template": template, "config": PLOT_CONFIG, "figures": out}
    text = json.dumps(block, separators=(",", ":"), allow_nan=False)
    return divs, text.replace("</", "<\\/")  # no "</script>" inside the block


@cache
def packed_plotlyjs() -> str:
    """plotly.js, gzipped and base64-encoded (kept for the process: 0.7 s to pack)."""
    import base64
    import gzip

    from plotly.offline import get_plotlyjs

    packed = gzip.compress(get_plotlyjs().encode("utf-8"), compresslevel=6, mtime=0)
    return base64.b64encode(packed).decode("ascii")


def figures_html(report: Report, baselines: list[Progress] | None = None) -> tuple[list[str], str]:
    """Every figure as an HTML fragment, in reading order, and the JSON they are drawn
    from (:func:`figures_json`)."""
    view = report.search
    direction, metric = view.spec.direction, view.spec.metric
    colors = stage_colors([s.name for s in view.spec.stages])
    done = trials(view)
    shown = subsample(done, direction)
    promising = report.promising
    figs = []
    lines = [progress(done, direction, "coarse-to-fine"), *(baselines or [])]
    figs.append(draw_progress(lines, metric))
    pair = pair_data(view, report.key_params(), shown, promising)
    if pair is not None:
        figs.append(draw_pair(pair, colors))
    figs += [draw_slice(d, colors) for d in slice_data(view, shown, promising)]
    curves = curve_data(view)
    if curves:
        figs.append(draw_curves(curves))
    out, data = figures_json(figs)
    if len(shown) < len(done):
        out.insert(
            1,
            f'<p class="muted">Scatter plots show {len(shown):,} of {len(done):,} trials: '
            "the best tenth of them and an even sample of the rest.</p>",
        )
    return out, data


def _stage_section(report: Report, s: StageReport) -> str:
    spec, v = report.search.spec, s.view
    parts = [
        f"<h3>Stage {_e(v.stage.name)}</h3>",
        f"<p>{len(v.finished)}/{v.slots} trials &times; {v.stage.epochs} epoch(s), "
        f"{_e(v.stage.sampler)} sampler: {_e(counts_line(v))}.</p>",
    ]
    if v.space is None:
        return "".join(parts + ["<p class='muted'>Not started.</p>"])
    if s.importance.values:
        rows = "".join(
            f"<tr><td>{_e(n)}</td><td><span class='imp' style='width:{int(160 * x)}px'></span> "
            f"{x:.2f}</td></tr>"
            for n, x in s.importance.values.items()
        )
        parts.append(
            f"<table><tr><th>parameter</th><th>importance ({_e(s.importance.evaluator)})</th>"
            f"</tr>{rows}</table>"
        )
    if s.importance.note:
        parts.append(f"<p class='muted'>Importance: {_e(s.importance.note)}.</p>")
    evidence = s.evidence_line()
    if evidence is not None:
        parts.append(f"<p class='muted'>{_e(evidence)}.</p>")
    if s.final is not None:
        table = final_table(s)
        if table is not None:
            parts.append(f"<p>Promising region of the search:</p>{table.html()}")
        parts.append(f"<p>{_e(s.final.describe())}.</p>")
    elif s.region and v.handed_on is not None:
        if s.region_thin:
            parts.append(f"<p class='muted'>Promising region: {_e(thin_region_text(s))}.</p>")
        else:
            parts.append(
                f"<p>Promising region (top {len(v.handed_on.kept)} of "
                f"{v.handed_on.considered} trials):</p>{region_table(s).html()}"
            )
        if s.sure is not None:
            parts.append(f"<p>{_e(s.sure.describe())}.</p>")
    best = best_trials(spec, v)
    if best is not None:
        parts.append(best.html())
    return "".join(parts)


def _cell(v: Any) -> str:
    if v is None:
        return "<td data-v=''></td>"
    if isinstance(v, bool):
        return f"<td data-v='{int(v)}'>{'yes' if v else ''}</td>"
    if isinstance(v, float):
        shown = f"{v:.4g}" if math.isfinite(v) else str(v)
        return f"<td data-v='{v!r}'>{shown}</td>"
    return f"<td data-v='{_e(v)}'>{_e(v)}</td>"


def trials_table(report: Report) -> str:
    """Every finished or running trial, stage by stage, best first; sortable by column."""
    view = report.search
    space = list(view.spec.space)
    records = [
        r
        for v in view.stages
        for r in rank(v.records, view.spec.direction)
        + [x for x in v.records if not x.finished and not x.superseded]
    ]
    diags = [d for d in DIAGNOSTICS if any(d in r.attrs for r in records)]
    head = [
        "stage",
        "trial",
        "state",
        view.spec.metric,
        "epochs",
        *[p.name for p in space],
        *diags,
    ]
    out = [
        "<div class='scroll'><table id='trials'><thead><tr>",
        "".join(f"<th>{_e(h)}</th>" for h in head),
        "</tr></thead><tbody>",
    ]
    for r in records:
        state = "DIVERGED" if r.diverged else r.state
        cells = [
            _cell(r.stage),
            _cell(r.number),
            _cell(state),
            _cell(r.value),
            _cell(epochs_spent(r)),
        ]
        for p in space:
            x = r.params.get(p.name)
            cells.append(
                "<td data-v=''></td>"
                if x is None
                else f"<td data-v='{_e(x)}'>{_e(p.format(x))}</td>"
            )
        for d in diags:
            x = r.attrs.get(d)
            cells.append(_cell(x[:120] if isinstance(x, str) else x))
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def state_html(report: Report) -> str:
    """The lines the terminal report and status lead with (``terminal.format_state``: the
    state, what to do about it, the trials counted), one paragraph each: a page opened
    days later says whether the search it shows was still running, and why it stopped."""
    lines = [line.strip() for line in format_state(report.search)]
    return "\n".join(f"<p class='state'>{_e(line)}</p>" for line in lines)


def render_html(report: Report, baselines: list[Progress] | None = None) -> str:
    """The whole page as a string."""
    spec = report.search.spec
    advice = report.advice
    warn = (
        "".join(f"<div class='warn'>{_e(a.message)}</div>" for a in advice)
        if advice
        else "<p class='ok'>No warnings: no range pressed at an edge, nothing odd in the curves.</p>"
    )
    figure_divs, figure_data = figures_html(report, baselines)
    plan = ", ".join(
        f"{_e(s.name)} ({s.trials} &times; {s.epochs} epoch(s), {_e(s.sampler)})"
        for s in spec.stages
    )
    body = [
        f"<h1>hpsearch report: {_e(spec.name)}</h1>",
        state_html(report),
        f"<p>{_e(spec.metric)} ({_e(spec.direction)}), seed {spec.seed}. Stages: {plan}; "
        f"{spec.total_epochs} epochs in all.</p>",
        "<h2>Warnings</h2>",
        warn,
        "<h2>Stages</h2>",
        *(_stage_section(report, s) for s in report.stages),
        "<h2>Figures</h2>",
        *figure_divs,
        "<h2>All trials</h2>",
        "<p class='muted'>Click a column to sort. Stage by stage, best first.</p>",
        trials_table(report),
    ]
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>hpsearch report: {_e(spec.name)}</title><style>{STYLE}</style></head><body>"
        + "\n".join(body)
        + f"<script type='application/json' id='hp-figures'>{figure_data}</script>"
        + "<script type='application/gzip;base64' id='hp-plotly'>"
        + packed_plotlyjs()
        + "</script>"
        + f"<script>{DRAW_JS}</script><script>{SORT_JS}</script></body></html>"
    )


def write_html(report: Report, path: str | Path, baselines: list[Progress] | None = None) -> int:
    """Write the report; returns its size in bytes."""
    size = write_atomic(path, render_html(report, baselines))
    log.info("wrote %s (%d bytes)", path, size)
    return size
