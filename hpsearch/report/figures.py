"""Plotly figures of the HTML report, drawn from the data ``plotdata`` computed.

Only drawing happens here; every choice of what to show was made in ``plotdata`` (tested
without plotly). Log parameters get log axes, so a decade is a decade wide on screen.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from hpsearch.core.records import ok_values
from hpsearch.report.plotdata import PairData, Progress, RegionFigureData, SliceData, TrialCurves

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from hpsearch.core.space import NumericParam

#: Stage colours: plotly's default qualitative palette, one per stage in order.
PALETTE = (
    "#636efa",
    "#ef553b",
    "#00cc96",
    "#ab63fa",
    "#ffa15a",
    "#19d3f3",
    "#ff6692",
    "#b6e880",
)
REGION_FILL = "rgba(0,160,90,0.13)"
REGION_LINE = "rgb(0,140,80)"
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "star", "hexagon")


def _array(values: list[Any]) -> Any:
    """A numpy array: plotly validates and copies a list element by element (0.3 s per
    2,000-point trace measured), an array in one go."""
    import numpy as np

    return np.asarray(values, dtype=object if values and isinstance(values[0], str) else None)


def stage_colors(stages: list[str]) -> dict[str, str]:
    return {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(stages)}


def _layout(fig: go.Figure, title: str, height: int = 380) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 14}},
        height=height,
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        legend={"orientation": "h", "y": -0.22},
        template="plotly_white",
    )
    return fig


def draw_slice(d: SliceData, colors: dict[str, str]) -> go.Figure:
    import plotly.graph_objects as go

    fig = go.Figure()
    for s in d.series:
        fig.add_trace(
            _points(
                go,
                s,
                {
                    "color": colors[s.stage],
                    "size": 7,
                    "opacity": 0.75,
                    "symbol": _array(["x" if dv else "circle" for dv in s.diverged]),
                },
            )
        )
    note = ""
    if d.region is not None:
        fig.add_shape(
            type="rect",
            xref="x",
            yref="paper",
            x0=d.region[0],
            x1=d.region[1],
            y0=0,
            y1=1,
            fillcolor=REGION_FILL,
            line={"color": REGION_LINE, "width": 1, "dash": "dot"},
            layer="below",
        )
        note = " (shaded: the promising region)"
    elif d.kept:
        note = f" (the promising region keeps {', '.join(map(str, d.kept))})"
    xaxis: dict[str, Any] = {"title": {"text": d.param}}
    if d.log:
        xaxis.update(type="log", exponentformat="power")
    if d.categorical:
        xaxis.update(type="category")
    yaxis: dict[str, Any] = {"title": {"text": d.metric}}
    if d.y_range is not None:
        yaxis["range"] = list(d.y_range)
        note += "; the worst values are off the view (zoom out)"
    fig.update_layout(xaxis=xaxis, yaxis=yaxis)
    return _layout(fig, f"{d.metric} against {d.param}{note}")


def _box_trace(go: Any, x: tuple[float, float], y: tuple[float, float], **kw: Any) -> Any:
    # A closed line, not a shape: a trace takes data values on log axes and gets a legend.
    return go.Scatter(
        x=[x[0], x[1], x[1], x[0], x[0]],
        y=[y[0], y[0], y[1], y[1], y[0]],
        mode="lines",
        hoverinfo="name",
        **kw,
    )


def draw_pair(d: PairData, colors: dict[str, str]) -> go.Figure:
    import plotly.graph_objects as go

    fig = go.Figure()
    for b in d.boxes:
        if b.promising:
            fig.add_trace(
                _box_trace(
                    go,
                    b.x,
                    b.y,
                    name=b.label,
                    fill="toself",
                    fillcolor=REGION_FILL,
                    line={"color": REGION_LINE, "width": 2},
                )
            )
        else:
            stage = b.label.removeprefix("stage ")
            fig.add_trace(
                _box_trace(
                    go,
                    b.x,
                    b.y,
                    name=f"{b.label} range",
                    line={"color": colors.get(stage, "grey"), "width": 1.5, "dash": "dash"},
                )
            )
    cmin, cmax = d.color_range
    for i, s in enumerate(d.series):
        fig.add_trace(
            _points(
                go,
                s,
                {
                    "symbol": _array(
                        ["x" if dv else SYMBOLS[i % len(SYMBOLS)] for dv in s.diverged]
                    ),
                    "size": 8,
                    "color": _array(s.color),
                    "cmin": cmin,
                    "cmax": cmax,
                    "colorscale": "Viridis",
                    "reversescale": True,  # the good end bright whichever way is good
                    "showscale": i == 0,
                    "colorbar": {"title": {"text": d.metric}},
                    "line": {"width": 0.5, "color": colors[s.stage]},
                },
            )
        )
    xaxis: dict[str, Any] = {"title": {"text": d.x}}
    yaxis: dict[str, Any] = {"title": {"text": d.y}}
    if d.x_log:
        xaxis.update(type="log", exponentformat="power")
    if d.y_log:
        yaxis.update(type="log", exponentformat="power")
    fig.update_layout(xaxis=xaxis, yaxis=yaxis)
    return _layout(
        fig, f"{d.y} against {d.x}, coloured by {d.metric}, with each stage's box", height=520
    )


def _points(go: Any, s: Any, marker: dict[str, Any]) -> go.Scatter:
    """One stage's trials as markers that name the trial on hover."""
    return go.Scatter(
        x=_array(s.x),
        y=_array(s.y),
        mode="markers",
        name=f"stage {s.stage}",
        text=_array(s.text),
        hoverinfo="text",
        marker=marker,
    )


def draw_progress(lines: list[Progress], metric: str) -> go.Figure:
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, p in enumerate(lines):
        fig.add_trace(
            go.Scatter(
                x=p.epochs,
                y=p.best,
                mode="lines+markers",
                line={"shape": "hv", "color": PALETTE[i % len(PALETTE)]},
                name=p.label,
            )
        )
    if len(lines) == 1:
        for at, stage in lines[0].stage_starts[1:]:
            fig.add_vline(x=at, line={"dash": "dot", "color": "grey"})
            fig.add_annotation(
                x=at, y=1, yref="paper", text=f"stage {stage}", showarrow=False, xanchor="left"
            )
    fig.update_layout(
        xaxis={"title": {"text": "epochs spent (cumulative)"}},
        yaxis={"title": {"text": f"best {metric} so far"}},
    )
    return _layout(fig, f"best {metric} so far against epochs spent")


def draw_curves(sets: list[TrialCurves]) -> go.Figure:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = {n for s in sets for n in s.curves}
    panels = [p for p in ("loss", "accuracy") if any(n.endswith(p) for n in names)]
    if not panels:
        panels = ["reported"]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=panels)
    for i, s in enumerate(sets):
        color = PALETTE[i % len(PALETTE)]
        for name, ys in s.curves.items():
            panel = next((j for j, p in enumerate(panels) if name.endswith(p)), 0)
            fig.add_trace(
                go.Scatter(
                    x=list(range(1, len(ys) + 1)),
                    y=ys,
                    mode="lines+markers",
                    name=f"{s.label} {name}",
                    legendgroup=s.label,
                    line={"color": color, "dash": "dash" if name.startswith("train") else "solid"},
                ),
                row=1,
                col=panel + 1,
            )
    fig.update_xaxes(title_text="epoch")
    if "loss" in panels and all(
        v > 0 for s in sets for n, ys in s.curves.items() if n.endswith("loss") for v in ys
    ):
        fig.update_yaxes(type="log", row=1, col=panels.index("loss") + 1)
    return _layout(
        fig,
        "learning curves of each stage's best and worst trial (dashed: training)",
        height=460,
    )


def _range_axis(p: NumericParam) -> dict[str, Any]:
    """An axis over the whole range the stage searched, so the region's box shows how
    much of it is left; plotly wants a log axis's range in log10 units."""
    if p.log:
        return {
            "title": {"text": p.name},
            "type": "log",
            "exponentformat": "power",
            "range": [math.log10(p.low), math.log10(p.high)],
        }
    return {"title": {"text": p.name}, "range": [p.low, p.high]}


def draw_region_figure(d: RegionFigureData, color: str) -> go.Figure:
    """The dashboard's figure of a stage, in the report's colours: the region's box as the
    pair figure draws the promising region, the trials coloured by the metric on the same
    scale and outlined in the stage's colour (``color``), the top ones larger, failed and
    diverged ones as crosses."""
    import plotly.graph_objects as go

    fig = go.Figure()
    if d.box_y is not None:
        box_y = d.box_y
    else:  # one numeric parameter: the box spans the values it got
        values = ok_values(d.ok)
        box_y = (min(values, default=0.0), max(values, default=1.0))
    fig.add_trace(
        _box_trace(
            go,
            d.box_x,
            box_y,
            name="region handed on",
            fill="toself",
            fillcolor=REGION_FILL,
            line={"color": REGION_LINE, "width": 2},
        )
    )
    cmin, cmax = d.color_range
    for kept, symbol, name in ((False, "circle", "trials"), (True, "diamond", "top trials")):
        rs = [r for r in d.ok if (r.number in d.kept) == kept]
        if not rs:
            continue
        fig.add_trace(
            _trials_trace(
                go,
                d,
                rs,
                name,
                {
                    "symbol": symbol,
                    "size": 13 if kept else 8,
                    "color": _array([r.value for r in rs]),
                    "cmin": cmin,
                    "cmax": cmax,
                    "colorscale": "Viridis",
                    "reversescale": True,  # as in the pair figure: the good end bright
                    "showscale": not kept,
                    "colorbar": {"title": {"text": d.metric}},
                    "line": {"width": 1.5 if kept else 0.5, "color": color},
                },
            )
        )
    if d.bad and d.y is not None:
        fig.add_trace(
            _trials_trace(
                go, d, d.bad, "failed / diverged", {"symbol": "x", "size": 8, "color": color}
            )
        )
    fig.update_layout(
        xaxis=_range_axis(d.x), yaxis=_range_axis(d.y) if d.y else {"title": {"text": d.metric}}
    )
    return _layout(fig, d.title, height=520)


def _trials_trace(
    go: Any, d: RegionFigureData, rs: list[Any], name: str, marker: dict[str, Any]
) -> go.Scatter:
    """Trials of the region figure as markers that name the trial on hover."""
    return go.Scatter(
        x=_array([r.params[d.x.name] for r in rs]),
        y=_array([r.params[d.y.name] if d.y else r.value for r in rs]),
        mode="markers",
        name=name,
        text=_array([d.hover[r.number] for r in rs]),
        hoverinfo="text",
        marker=marker,
    )
