"""What each figure of the HTML report shows, computed apart from drawing it.

Following Optuna's ``visualization/_slice.py``: every figure's data is a plain dataclass
built by a pure function (tested without plotly), and ``figures.py`` only draws it. Past
``MAX_POINTS`` trials a scatter shows the best trials and an even, seeded sample of the
rest, so that a 10,000-trial search stays a readable, small file.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from hpsearch.core.records import TrialRecord, ok_values, rank
from hpsearch.core.regions import Region
from hpsearch.core.space import NumericParam, Param
from hpsearch.core.spec import StudySpec
from hpsearch.report.analysis import StageReport
from hpsearch.report.curves import trial_curves
from hpsearch.report.search import SearchView

#: Points per scatter: plotly's SVG stays responsive, and the file small, up to about this.
MAX_POINTS = 2000
#: Share of a subsampled scatter reserved for the best trials, which a reader looks for.
BEST_SHARE = 0.1
#: The sample of the rest is seeded: the same search gives the same file.
SAMPLE_SEED = 0


def key(r: TrialRecord) -> tuple[str, int]:
    """Trial numbers restart in every stage study; (stage, number) names a trial."""
    return (r.stage, r.number)


def trials(view: SearchView) -> list[TrialRecord]:
    """Every finished trial of the search that counts, in stage then trial order."""
    return [
        r for v in view.stages for r in sorted(v.records, key=lambda r: r.number) if r.finished
    ]


def subsample(
    records: list[TrialRecord], direction: str, limit: int = MAX_POINTS
) -> list[TrialRecord]:
    """At most ``limit`` records: the best ``BEST_SHARE`` of the limit, then a seeded
    sample of the others; original order kept. Fewer than ``limit``: all of them."""
    if len(records) <= limit:
        return list(records)
    best = [r for r in rank(records, direction) if r.ok][: max(1, int(limit * BEST_SHARE))]
    chosen = {key(r) for r in best}
    rest = [r for r in records if key(r) not in chosen]
    chosen |= {key(r) for r in random.Random(SAMPLE_SEED).sample(rest, limit - len(best))}
    return [r for r in records if key(r) in chosen]


def hover(r: TrialRecord, metric: str, space: list[Param]) -> str:
    """One trial in a tooltip: stage, number, value, params in their own format."""
    value = "diverged" if r.diverged else f"{r.value:.4g}" if r.value is not None else r.state
    params = ", ".join(
        f"{p.name}={p.format(r.params[p.name])}" for p in space if p.name in r.params
    )
    return f"{r.stage} #{r.number}: {metric} {value}<br>{params}"


#: The view of the metric reaches this many times the spread of the better 75% of values
#: past their 75th percentile (Tukey's fence, measured from the best value).
FENCE = 1.5


def value_window(values: list[float], direction: str) -> tuple[float, float] | None:
    """The range of the metric worth looking at, or None to show everything.

    A few runs that blew up without being flagged as diverged (val loss 35 where the rest
    lie below 3) squash every other point into a line; then the view keeps the good end
    and stops at the fence. Readers can still zoom out.
    """
    vals = sorted(v for v in values if math.isfinite(v))
    if len(vals) < 5:
        return None
    if direction == "maximize":
        window = value_window([-v for v in vals], "minimize")
        return None if window is None else (-window[1], -window[0])
    lo, hi = vals[0], vals[-1]
    q = vals[int(0.75 * (len(vals) - 1))]
    fence = q + FENCE * (q - lo)
    if hi <= fence or q == lo:
        return None
    pad = 0.05 * (fence - lo)
    return (lo - pad, fence + pad)


def color_range(values: list[float], direction: str) -> tuple[float, float]:
    """The ends of a colour scale of the metric: the window worth looking at
    (:func:`value_window`), else every value."""
    window = value_window(values, direction)
    if window is None:
        window = (min(values), max(values)) if values else (0.0, 1.0)
    return window


@dataclass(frozen=True)
class Series:
    """The points of one stage in a scatter; ``diverged`` ones are drawn as crosses."""

    stage: str
    x: list[Any]
    y: list[Any]
    text: list[str]
    diverged: list[bool]
    color: list[float] = field(default_factory=list)  # the metric, where colour shows it


@dataclass(frozen=True)
class SliceData:
    """The metric against one parameter, per stage, with the promising region shaded."""

    param: str
    log: bool
    categorical: bool
    metric: str
    series: list[Series]
    region: tuple[Any, Any] | None  # numeric: (low, high) of the promising region
    kept: list[Any]  # categorical: the choices the promising region keeps
    y_range: tuple[float, float] | None = None  # see value_window


def slice_data(
    view: SearchView, shown: list[TrialRecord], promising: Region | None
) -> list[SliceData]:
    """One slice per parameter of the search, over the trials ``shown`` that have a value."""
    space = list(view.spec.space)
    window = value_window(ok_values(shown), view.spec.direction)
    out = []
    for p in space:
        series = []
        for v in view.stages:
            rs = [
                r
                for r in shown
                if r.stage == v.stage.name and r.value is not None and p.name in r.params
            ]
            if rs:
                series.append(
                    Series(
                        v.stage.name,
                        [r.params[p.name] for r in rs],
                        [r.value for r in rs],
                        [hover(r, view.spec.metric, space) for r in rs],
                        [r.diverged for r in rs],
                    )
                )
        region, kept = None, []
        if promising is not None and p.name in promising.space.names:
            after = promising.space[p.name]
            if after.numeric:
                region = (after.low, after.high)
            else:
                kept = list(after.choices)
        out.append(
            SliceData(
                p.name,
                bool(p.numeric and p.log),
                not p.numeric,
                view.spec.metric,
                series,
                region,
                kept,
                window,
            )
        )
    return out


@dataclass(frozen=True)
class Box:
    """A rectangle over two parameters: a stage's searched range, or the promising region."""

    label: str
    x: tuple[float, float]
    y: tuple[float, float]
    promising: bool = False


@dataclass(frozen=True)
class PairData:
    """The two most important parameters against each other, coloured by the metric."""

    x: str
    y: str
    x_log: bool
    y_log: bool
    metric: str
    series: list[Series]
    boxes: list[Box]
    color_range: tuple[float, float]  # the colour scale's ends: see value_window


def pair_data(
    view: SearchView,
    names: list[str],
    shown: list[TrialRecord],
    promising: Region | None,
) -> PairData | None:
    """``names[:2]`` against each other (None with fewer than two numeric parameters)."""
    if len(names) < 2:
        return None
    x, y = view.spec.space[names[0]], view.spec.space[names[1]]
    space = list(view.spec.space)
    series = []
    for v in view.stages:
        rs = [
            r
            for r in shown
            if r.stage == v.stage.name
            and r.value is not None
            and x.name in r.params
            and y.name in r.params
        ]
        if rs:
            series.append(
                Series(
                    v.stage.name,
                    [r.params[x.name] for r in rs],
                    [r.params[y.name] for r in rs],
                    [hover(r, view.spec.metric, space) for r in rs],
                    [r.diverged for r in rs],
                    [r.value for r in rs if r.value is not None],  # (rs: all have one)
                )
            )
    boxes = [
        Box(f"stage {v.stage.name}", _bounds(v.space[x.name]), _bounds(v.space[y.name]))
        for v in view.stages
        if v.space is not None
    ]
    if promising is not None:
        boxes.append(
            Box(
                "promising region",
                _bounds(promising.space[x.name]),
                _bounds(promising.space[y.name]),
                promising=True,
            )
        )
    window = color_range(ok_values(shown), view.spec.direction)
    return PairData(
        x.name,
        y.name,
        bool(x.numeric and x.log),
        bool(y.numeric and y.log),
        view.spec.metric,
        series,
        boxes,
        window,
    )


@dataclass(frozen=True)
class RegionFigureData:
    """The dashboard's figure of a finished stage: its trials over its two most important
    numeric parameters, and the box of the region it hands on."""

    title: str
    metric: str
    x: NumericParam
    y: NumericParam | None  # None: one numeric parameter; the metric is the y axis
    ok: list[TrialRecord]  # usable trials, coloured by the metric
    kept: frozenset[int]  # trial numbers that spanned the region
    bad: list[TrialRecord]  # failed or diverged trials, drawn as crosses
    box_x: tuple[float, float]
    box_y: tuple[float, float] | None
    color_range: tuple[float, float]  # the colour scale's ends, as in the pair figure
    hover: dict[int, str]  # trial number -> tooltip, as in the report's scatters


def region_figure_data(spec: StudySpec, s: StageReport) -> RegionFigureData | None:
    """The stage's two most important numeric parameters (by the report's importance; in
    space order where it has none) and its region's box over them; None if there is
    nothing to draw."""
    v = s.view
    region, space = v.handed_on, v.space
    if region is None or space is None:
        return None
    numeric = [p for p in space if p.numeric]
    if not numeric:
        return None
    order = {p.name: i for i, p in enumerate(numeric)}
    numeric.sort(key=lambda p: (-s.importance.values.get(p.name, 0.0), order[p.name]))
    x = numeric[0]
    y = numeric[1] if len(numeric) > 1 else None
    after = region.space
    finished = [r for r in v.records if r.finished and x.name in r.params]
    ok = [r for r in finished if r.ok]
    top = f"{len(region.kept)} of {region.considered}"
    return RegionFigureData(
        # Short: the dashboard's plotly toolbar takes the right half of the title line.
        title=f"{v.stage.name}: the region of its top {top} trials",
        metric=spec.metric,
        x=x,
        y=y,
        ok=ok,
        kept=frozenset(region.kept),
        bad=[r for r in finished if not r.ok],
        box_x=_bounds(after[x.name]),
        box_y=_bounds(after[y.name]) if y else None,
        color_range=color_range(ok_values(ok), spec.direction),
        hover={r.number: hover(r, spec.metric, list(space)) for r in finished},
    )


def _bounds(p: Param) -> tuple[float, float]:
    """The region's range of a parameter picked as numeric (a region keeps the kinds)."""
    assert p.numeric, p.name
    return (p.low, p.high)


def epochs_spent(r: TrialRecord) -> float:
    """Epochs a trial actually trained: ``epochs_run`` where recorded (a diverged run stops
    early), else its stage's budget if it completed, else the epochs it reported."""
    run = r.attrs.get("epochs_run")
    if isinstance(run, int | float) and not isinstance(run, bool):
        return float(run)
    if r.state == "COMPLETE":
        return float(r.epochs)
    return float(max(r.intermediate, default=0))


@dataclass(frozen=True)
class Progress:
    """Best value so far against cumulative epochs: a step line, one step per improvement."""

    label: str
    epochs: list[float]
    best: list[float]
    total_epochs: float
    stage_starts: list[tuple[float, str]] = field(default_factory=list)


def progress(records: list[TrialRecord], direction: str, label: str) -> Progress:
    """``records`` in the order they ran (stage, then trial number): the best so far each
    time it improved, and the epochs spent by then. Only improvements are kept, so a
    10,000-trial search draws a handful of points."""
    better = (lambda a, b: a < b) if direction == "minimize" else (lambda a, b: a > b)
    spent = 0.0
    best: float | None = None
    epochs: list[float] = []
    values: list[float] = []
    starts: list[tuple[float, str]] = []
    for r in records:
        if not starts or starts[-1][1] != r.stage:
            starts.append((spent, r.stage))
        spent += epochs_spent(r)
        if r.ok and r.value is not None and (best is None or better(r.value, best)):
            best = r.value
            epochs.append(spent)
            values.append(best)
    if values:
        epochs.append(spent)
        values.append(values[-1])
    return Progress(label, epochs, values, spent, starts)


@dataclass(frozen=True)
class TrialCurves:
    """A trial's learning curves (train/val loss and accuracy, or its reported values)."""

    label: str
    role: str  # "best" or "worst"
    curves: dict[str, list[float]]


def curve_data(view: SearchView) -> list[TrialCurves]:
    """Per stage, the best and the worst trial that gave a usable value; only stages of
    several epochs when there are any (a one-epoch curve is a single point)."""
    out = []
    long = [v for v in view.stages if v.stage.epochs > 1 and any(r.ok for r in v.records)]
    for v in long or view.stages:
        ok = [r for r in rank(v.records, view.spec.direction) if r.ok]
        picks = [("best", ok[0]), ("worst", ok[-1])] if len(ok) > 1 else [("best", r) for r in ok]
        for role, r in picks:
            curves = trial_curves(r)
            if curves:
                label = f"{v.stage.name} #{r.number} ({role}, {view.spec.metric} {r.value:.4g})"
                out.append(TrialCurves(label, role, curves))
    return out
