"""The HTML report: one self-contained file that works offline.

plotly.js is embedded once in the page head (no CDN: a report is read on laptops, on
trains and in archives long after the search), and every figure is a ``div`` that calls
it. Text sections carry the same facts as the terminal report; a sortable table lists
every trial.
"""

from __future__ import annotations

import html
import logging
import math
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


def _figure_div(fig: Any, div_id: str) -> str:
    return fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        config={"displaylogo": False, "responsive": True},
    )


def figures_html(report: Report, baselines: list[Progress] | None = None) -> list[str]:
    """Every figure as an HTML fragment, in reading order."""
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
    out = [_figure_div(f, f"figure-{i}") for i, f in enumerate(figs)]
    if len(shown) < len(done):
        out.insert(
            1,
            f'<p class="muted">Scatter plots show {len(shown):,} of {len(done):,} trials: '
            "the best tenth of them and an even sample of the rest.</p>",
        )
    return out


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


def render_html(report: Report, baselines: list[Progress] | None = None) -> str:
    """The whole page as a string."""
    from plotly.offline import get_plotlyjs

    spec = report.search.spec
    advice = report.advice
    warn = (
        "".join(f"<div class='warn'>{_e(a.message)}</div>" for a in advice)
        if advice
        else "<p class='ok'>No warnings: no range pressed at an edge, nothing odd in the curves.</p>"
    )
    plan = ", ".join(
        f"{_e(s.name)} ({s.trials} &times; {s.epochs} epoch(s), {_e(s.sampler)})"
        for s in spec.stages
    )
    body = [
        f"<h1>hpsearch report: {_e(spec.name)}</h1>",
        f"<p>{_e(spec.metric)} ({_e(spec.direction)}), seed {spec.seed}. Stages: {plan}; "
        f"{spec.total_epochs} epochs in all.</p>",
        "<h2>Warnings</h2>",
        warn,
        "<h2>Stages</h2>",
        *(_stage_section(report, s) for s in report.stages),
        "<h2>Figures</h2>",
        *figures_html(report, baselines),
        "<h2>All trials</h2>",
        "<p class='muted'>Click a column to sort. Stage by stage, best first.</p>",
        trials_table(report),
    ]
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>hpsearch report: {_e(spec.name)}</title><style>{STYLE}</style>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
        + "\n".join(body)
        + f"<script>{SORT_JS}</script></body></html>"
    )


def write_html(report: Report, path: str | Path, baselines: list[Progress] | None = None) -> int:
    """Write the report; returns its size in bytes."""
    size = write_atomic(path, render_html(report, baselines))
    log.info("wrote %s (%d bytes)", path, size)
    return size
