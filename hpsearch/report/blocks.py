"""The tables and lines every report view shows, built once and rendered three ways.

The terminal report, the HTML page and the dashboard note of a stage show the same best
trials, region handed on, importance and counts. Each is built here, from the stage's
:class:`~hpsearch.report.analysis.StageReport`, as a :class:`Table` (or a line), and each
view only picks a rendering: aligned text, markdown or HTML. A column or a number format
therefore cannot drift between them.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hpsearch.core.records import rank
from hpsearch.core.spec import StudySpec
from hpsearch.report.describe import region_rows
from hpsearch.report.search import StageView

if TYPE_CHECKING:  # the analysis is for the full report: status never loads it
    from hpsearch.report.analysis import StageReport
    from hpsearch.report.importance import Importance

#: Best trials a stage lists.
TOP = 5


@dataclass(frozen=True)
class Table:
    """Rows of strings under a header. ``code``: columns shown in a fixed-width font (the
    region's position bar); ``warn``: the column whose non-empty cells are warnings, which
    each rendering marks its own way."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    code: frozenset[int] = frozenset()
    warn: int | None = None

    def _cells(self, mark: str) -> list[list[str]]:
        return [
            [f"{mark}{c}" if i == self.warn and c else c for i, c in enumerate(row)]
            for row in self.rows
        ]

    def text(self) -> str:
        """Aligned columns for a terminal (ASCII: ``<-`` marks a warning)."""
        return format_table(list(self.header), self._cells("<- "))

    def markdown(self) -> str:
        """A GitHub-flavoured markdown table (optuna-dashboard renders notes as one)."""

        def cell(i: int, c: str) -> str:
            c = c.replace("|", "\\|")
            return f"`{c}`" if i in self.code and c else c

        lines = [
            "| " + " | ".join(self.header) + " |",
            "|" + "|".join("---" for _ in self.header) + "|",
        ]
        lines += [
            "| " + " | ".join(cell(i, c) for i, c in enumerate(row)) + " |"
            for row in self._cells("⚠ ")
        ]
        return "\n".join(lines)

    def html(self) -> str:
        """An HTML table, every cell escaped."""

        def cell(i: int, c: str) -> str:
            c = html.escape(c)
            return f"<td><code>{c}</code></td>" if i in self.code and c else f"<td>{c}</td>"

        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
        rows = "".join(
            "<tr>" + "".join(cell(i, c) for i, c in enumerate(row)) + "</tr>"
            for row in self._cells("⚠ ")
        )
        return f"<table><tr>{head}</tr>{rows}</table>"


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell, a dashed line under the header."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    return "\n".join(line.rstrip() for line in lines + [fmt.format(*r) for r in rows])


def counts_line(v: StageView) -> str:
    """``12 complete, 1 diverged, 3 failed``, then the runs stopped early and the epochs
    they saved where there were any, and ``, 2 running`` while trials run."""
    c = v.counts
    line = f"{c['complete']} complete, {c['diverged']} diverged, {c['failed']} failed"
    return line + v.stopped_text + (f", {c['running']} running" if c["running"] else "")


def best_trials(spec: StudySpec, v: StageView, top: int = TOP) -> Table | None:
    """The stage's ``top`` usable trials, best first: number, value, every searched
    parameter in its own format. None before the stage has one."""
    if v.space is None:
        return None
    ranked = [r for r in rank(v.records, spec.direction) if r.ok][:top]
    if not ranked:
        return None
    space = v.space
    return Table(
        ("trial", spec.metric, *space.names),
        tuple(
            (
                str(r.number),
                f"{r.value:.4g}",
                *(space[n].format(r.params[n]) if n in r.params else "-" for n in space.names),
            )
            for r in ranked
        ),
    )


def region_table(s: StageReport) -> Table:
    """The region the stage hands on, one row per parameter (``describe.RegionRow``)."""
    return Table(
        ("parameter", "range", "of stage range", "where", "kept", "best", "edge"),
        tuple(
            (r.name, r.range, r.was, r.bar, f"{r.kept:.0%}", r.best, r.edge or "")
            for r in s.region
        ),
        code=frozenset({3}),
        warn=6,
    )


def thin_region_text(s: StageReport) -> str:
    """What a report says instead of a region spanned by a handful of runs."""
    # imported here: core.evidence loads numpy, which status (the tables alone) never needs
    from hpsearch.core.evidence import REGION_RUNS

    h = s.view.handed_on
    n = len(h.kept) if h is not None else 0
    return (
        f"the evidence is thin: the region is spanned by {n} run(s) "
        f"(more than {REGION_RUNS} needed); the next stage's ranges are not a finding"
    )


def final_table(s: StageReport) -> Table | None:
    """The search's promising region (``StageReport.final``), one row per parameter in
    its own terms (an int range, a set of choices); None when none is stated."""
    f = s.final
    if f is None or f.thin is not None:
        return None
    best = best_trials_params(s)
    rows = region_rows(f.region(best))
    return Table(
        ("parameter", "range", "of range searched", "where", "kept", "best"),
        tuple((r.name, r.range, r.was, r.bar, f"{r.kept:.0%}", r.best) for r in rows),
        code=frozenset({3}),
    )


def best_trials_params(s: StageReport) -> dict[str, object]:
    """The best usable run's params among the longest runs of the stage (or {})."""
    from hpsearch.core.records import recommended

    best = recommended(s.view.records, "minimize" if s.minimize else "maximize")
    return dict(best.params) if best is not None else {}


def importance_table(imp: Importance) -> Table | None:
    """Each parameter's importance, most important first; None when there is none."""
    if not imp.values:
        return None
    return Table(
        ("parameter", f"importance ({imp.evaluator})"),
        tuple((n, f"{x:.2f}") for n, x in imp.values.items()),
    )
