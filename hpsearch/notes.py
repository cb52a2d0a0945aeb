"""What a finished stage study carries for reviewers in optuna-dashboard: a note and a figure.

Reviewers see only what hpsearch writes into the storage. When a stage finishes, its study
gets a markdown note with the same facts as ``hpsearch report`` (the region it hands on,
its best trials, the important parameters, edge warnings, why trials failed) and a plotly
figure of that region (the metric over the two most important parameters, with the box of
the region), which the dashboard shows on the study page.

The note and figure are computed from the stored results only and are deterministic; the
first worker to finish the stage writes them (it takes the note's lease), the others go on,
and nobody overwrites a note that is there (a person's included).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpsearch.records import TrialRecord, rank
from hpsearch.regions import describe_range
from hpsearch.space import CategoricalParam, NumericParam, format_value

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from hpsearch.report.search import StageView
    from hpsearch.spec import StudySpec
    from hpsearch.store import SearchStore

log = logging.getLogger(__name__)

#: The id of the region figure in the study's system attrs: saving again overwrites it.
FIGURE_ID = "region"
#: Best trials listed in the note.
TOP = 5
#: Trial numbers listed per failure reason; the rest are counted.
MAX_LISTED = 12


def param_importances(v: StageView, direction: str) -> dict[str, float]:
    """The stage's importance as ``hpsearch report`` computes it (same evaluator), or
    ``{}`` when the stage is too small or too uniform for it to say anything."""
    from hpsearch.report.analysis import DEFAULT_EVALUATOR
    from hpsearch.report.importance import param_importance

    if v.space is None:
        return {}
    return dict(param_importance(v.records, v.space, direction, DEFAULT_EVALUATOR).values)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def _problems(records: list[TrialRecord]) -> list[str]:
    """Failed and diverged trials grouped by the reason the worker or objective recorded
    (``fail_reason``, ``diverged_reason``): one crashing choice often fails many trials."""
    groups: dict[tuple[str, str], list[int]] = {}
    for r in sorted(records, key=lambda r: r.number):
        if r.superseded:
            continue
        if r.state in ("FAIL", "PRUNED"):
            key = ("failed", str(r.attrs.get("fail_reason", "no reason recorded")))
        elif r.diverged:
            key = ("diverged", str(r.attrs.get("diverged_reason", "no reason recorded")))
        else:
            continue
        groups.setdefault(key, []).append(r.number)
    lines = []
    for (what, reason), numbers in groups.items():
        shown = ", ".join(map(str, numbers[:MAX_LISTED]))
        more = f" and {len(numbers) - MAX_LISTED} more" if len(numbers) > MAX_LISTED else ""
        trials = "trial" if len(numbers) == 1 else "trials"
        lines.append(f"- {len(numbers)} {what} ({trials} {shown}{more}): `{reason}`")
    return lines


def stage_note(spec: StudySpec, v: StageView, importances: dict[str, float]) -> str:
    """The markdown note of a finished stage: the same facts as ``hpsearch report``."""
    stage = v.stage
    c = v.counts
    lines = [
        f"## Stage `{stage.name}` of search `{spec.name}`",
        "",
        f"**{spec.metric}** ({spec.direction}) · {len(v.finished)}/{v.slots} trials × "
        f"{stage.epochs} epoch(s) · {stage.sampler} sampler · {c['complete']} complete, "
        f"{c['diverged']} diverged, {c['failed']} failed{v.stopped_text}",
    ]
    if v.region_in is not None:
        lines += ["", f"Searched the region handed on by stage `{spec.stages[v.index - 1].name}`:"]
        lines += [f"- {p.describe()}" for p in v.region_in.params]
    ranked = [r for r in rank(v.records, spec.direction) if r.ok][:TOP]
    if ranked and v.space is not None:
        names = v.space.names
        rows = [
            [str(r.number), f"{r.value:.4g}"]
            + [format_value(v.space[n], r.params[n]) if n in r.params else "-" for n in names]
            for r in ranked
        ]
        lines += [
            "",
            f"### Best {len(ranked)} trials",
            "",
            *_table(["trial", spec.metric, *names], rows),
        ]
    if importances:
        lines += ["", "### Important parameters", ""]
        rows = [[n, f"{imp:.2f}"] for n, imp in sorted(importances.items(), key=lambda kv: -kv[1])]
        lines += _table(["parameter", "importance"], rows)
    region = v.handed_on
    if region is not None:
        nxt = spec.stages[v.index + 1].name if v.index + 1 < len(spec.stages) else None
        to = f"to stage `{nxt}`" if nxt else "(the last stage: where to look next)"
        lines += [
            "",
            f"### Promising region handed on {to}",
            "",
            f"Spanned by the top {len(region.kept)} of {region.considered} trials "
            f"(trials {', '.join(map(str, region.kept))}).",
            "",
        ]
        rows = [
            [
                p.name,
                describe_range(p.after),
                describe_range(p.before),
                format_value(p.after, p.best) if p.best is not None else "-",
                f"⚠ {p.edge}" if p.edge else "",
            ]
            for p in region.params
        ]
        lines += _table(["parameter", "range", "was", "best", "edge"], rows)
        if region.warnings:
            lines += ["", "### Warnings", ""] + [f"- ⚠ {w}" for w in region.warnings]
    problems = _problems(v.records)
    if problems:
        lines += ["", "### Failed and diverged trials", "", *problems]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class RegionFigureData:
    """What the region figure draws, computed apart from drawing it (testable)."""

    title: str
    metric: str
    x: NumericParam
    y: NumericParam | None  # None: one numeric parameter; the metric is the y axis
    ok: list[TrialRecord]  # usable trials, coloured by the metric
    kept: frozenset[int]  # trial numbers that spanned the region
    bad: list[TrialRecord]  # failed or diverged trials, drawn as grey crosses
    box_x: tuple[float, float]
    box_y: tuple[float, float] | None


def region_figure_data(
    spec: StudySpec, v: StageView, importances: dict[str, float]
) -> RegionFigureData | None:
    """The two most important numeric parameters (in space order when importance is
    unknown) and the region's box over them; None if there is nothing to draw."""
    region, space = v.handed_on, v.space
    if region is None or space is None:
        return None
    numeric = [p for p in space if not isinstance(p, CategoricalParam)]
    if not numeric:
        return None
    order = {p.name: i for i, p in enumerate(numeric)}
    numeric.sort(key=lambda p: (-importances.get(p.name, 0.0), order[p.name]))
    x = numeric[0]
    y = numeric[1] if len(numeric) > 1 else None
    after = region.space
    finished = [r for r in v.records if r.finished and x.name in r.params]
    ok = [r for r in finished if r.ok]
    bad = [r for r in finished if not r.ok]
    top = f"{len(region.kept)} of {region.considered}"
    return RegionFigureData(
        # Short: the dashboard's plotly toolbar takes the right half of the title line.
        title=f"{v.stage.name}: the region of its top {top} trials",
        metric=spec.metric,
        x=x,  # type: ignore[arg-type]
        y=y,  # type: ignore[arg-type]
        ok=ok,
        kept=frozenset(region.kept),
        bad=bad,
        box_x=(after[x.name].low, after[x.name].high),  # type: ignore[union-attr]
        box_y=(after[y.name].low, after[y.name].high) if y else None,  # type: ignore[union-attr]
    )


def _axis(p: NumericParam) -> dict[str, Any]:
    """Axis over the searched range; plotly wants a log axis's range in log10 units."""
    if p.log:
        return {"title": p.name, "type": "log", "range": [math.log10(p.low), math.log10(p.high)]}
    return {"title": p.name, "range": [p.low, p.high]}


def draw_region_figure(d: RegionFigureData) -> go.Figure:
    import plotly.graph_objects as go

    fig = go.Figure()
    bx0, bx1 = d.box_x
    if d.box_y is not None:
        by0, by1 = d.box_y
        box_x, box_y = [bx0, bx1, bx1, bx0, bx0], [by0, by0, by1, by1, by0]
    else:
        lo = min((r.value for r in d.ok), default=0.0)
        hi = max((r.value for r in d.ok), default=1.0)
        box_x, box_y = [bx0, bx1, bx1, bx0, bx0], [lo, lo, hi, hi, lo]
    # A closed filled line rather than a layout shape: shapes on log axes take log10
    # coordinates, a trace takes data values on any axis.
    fig.add_trace(
        go.Scatter(
            x=box_x,
            y=box_y,
            mode="lines",
            fill="toself",
            fillcolor="rgba(255,127,14,0.12)",
            line={"color": "rgb(255,127,14)", "dash": "dash"},
            name="region handed on",
            hoverinfo="skip",
        )
    )
    values = [r.value for r in d.ok]
    for kept, symbol, name in ((False, "circle", "trials"), (True, "diamond", "top trials")):
        rs = [r for r in d.ok if (r.number in d.kept) == kept]
        if not rs:
            continue
        fig.add_trace(
            go.Scatter(
                x=[r.params[d.x.name] for r in rs],
                y=[r.params[d.y.name] if d.y else r.value for r in rs],
                mode="markers",
                name=name,
                text=[f"trial {r.number}: {d.metric} {r.value:.4g}" for r in rs],
                hoverinfo="text",
                marker={
                    "symbol": symbol,
                    "size": 13 if kept else 9,
                    "color": [r.value for r in rs],
                    "cmin": min(values),
                    "cmax": max(values),
                    "colorscale": "Viridis",
                    "colorbar": {"title": {"text": d.metric}},
                    "line": {"width": 1.5 if kept else 0.5, "color": "black"},
                },
            )
        )
    if d.bad and d.y is not None:
        fig.add_trace(
            go.Scatter(
                x=[r.params[d.x.name] for r in d.bad],
                y=[r.params[d.y.name] for r in d.bad],
                mode="markers",
                name="failed / diverged",
                text=[
                    f"trial {r.number}: {'diverged' if r.diverged else 'failed'}" for r in d.bad
                ],
                hoverinfo="text",
                marker={"symbol": "x", "size": 8, "color": "rgb(150,150,150)"},
            )
        )
    fig.update_layout(
        title={"text": d.title, "x": 0.01, "xanchor": "left", "font": {"size": 13}},
        xaxis=_axis(d.x),
        yaxis=_axis(d.y) if d.y else {"title": d.metric},
        legend={"orientation": "h", "y": -0.2},
        margin={"l": 60, "r": 20, "t": 60, "b": 40},
    )
    return fig


#: How long a note writer may take before another worker may write the note instead.
NOTE_LEASE_S = 300.0


def write_stage_note(store: SearchStore, spec: StudySpec, index: int, *, owner: str) -> bool:
    """Write stage ``index``'s note and region figure unless its study has a note already.

    Returns True if this call wrote them. Workers finishing a stage together do not all
    compute it: the first to take the note's lease (decided in the database) writes it
    from a read of that stage alone, and the others go on at once. The figure is saved
    first and the note last, so a writer that dies in between leaves no note, its lease
    expires, and the next worker that finishes writes both again. Never raises: the note
    is for reviewers, and a search must not stop because it could not be written.
    """
    try:
        return _write(store, spec, index, owner)
    except Exception:
        log.warning("could not write the dashboard note of stage %d", index, exc_info=True)
        return False


def _write(store: SearchStore, spec: StudySpec, index: int, owner: str) -> bool:
    from hpsearch.report.search import load_stage

    stage = store.find_stage(spec.name, spec.stages[index].name)
    if stage is None:
        return False
    lease = store.lease(f"note:{stage.name}", owner=owner, duration_s=NOTE_LEASE_S)
    if not lease.acquire():
        return False  # another worker is writing it
    try:
        if store.note(stage):
            return False  # written already, by a worker or by a person
        v = load_stage(store, spec, index)
        if not v.done:
            return False
        importances = param_importances(v, spec.direction)
        data = region_figure_data(spec, v, importances)
        figure = draw_region_figure(data) if data is not None else None
        store.save_note(stage, stage_note(spec, v, importances), figure, FIGURE_ID)
    finally:
        lease.release()
    log.info("wrote the dashboard note of %s", stage.name)
    return True
