"""A region, parameter by parameter, in words a practitioner reads at a glance.

``lr 10^-2.27 .. 10^0.02 of 10^-4.00 .. 10^0.48  [....#########.]  51%  best 1.27e-01``:
the range handed on in the parameter's own scale, the stage's range it came from, where
it sits inside that range, how much of the range is left (the narrower, the surer the
stage was), and the best trial's value. Pure text; the HTML report shows the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from hpsearch.core.regions import ParamRegion, Region

#: Characters in the position bar: enough to resolve a tenth of a range.
BAR = 20


@dataclass(frozen=True)
class RegionRow:
    """One parameter of a region, ready to print."""

    name: str
    range: str  # the region handed on
    was: str  # the range of the stage that found it
    bar: str  # where the one sits in the other
    kept: float  # fraction of the stage's range (or choices) still searched
    best: str
    edge: str | None


def region_rows(region: Region) -> list[RegionRow]:
    return [_row(p) for p in region.params]


def _row(p: ParamRegion) -> RegionRow:
    best = p.before.format(p.best) if p.best is not None else "-"
    before, after = p.before, p.after
    bar = ""  # a categorical's choices have no order to place
    if before.numeric and after.numeric:
        bar = position_bar(*before.scale_range(), *after.scale_range())
    was = before.extent()
    return RegionRow(
        p.name,
        after.describe_range(),
        before.describe_range(),
        bar,
        after.extent() / was if was > 0 else 1.0,
        best,
        p.edge,
    )


def position_bar(lo_b: float, hi_b: float, lo_a: float, hi_a: float, width: int = BAR) -> str:
    """``[....####......]``: ``.`` the old range, ``#`` the new one inside it, ``+`` where the
    new one reaches past the old (an edge was pressed). All in the parameter's scale."""
    lo, hi = min(lo_b, lo_a), max(hi_b, hi_a)
    span = (hi - lo) or 1.0
    cells = []
    for i in range(width):
        x = lo + (i + 0.5) * span / width
        inside_new = lo_a <= x <= hi_a
        inside_old = lo_b <= x <= hi_b
        cells.append(
            "#" if inside_new and inside_old else "+" if inside_new else "." if inside_old else " "
        )
    return "[" + "".join(cells) + "]"
