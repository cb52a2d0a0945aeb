"""Everything a report says about a search, computed once from its records.

The terminal, HTML and dashboard views all show the same facts: per stage, the importance
of each parameter, the warnings, and the region handed on, row by row. They are computed
here, so the views only format (``blocks`` holds the tables and lines they share;
``terminal``, ``page`` and ``note`` render them).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hpsearch.core.regions import Region, Sureness, sureness
from hpsearch.core.spec import StageSpec, StudySpec
from hpsearch.report.advice import Advice, EdgeFix, stage_advice
from hpsearch.report.describe import RegionRow, region_rows
from hpsearch.report.importance import Importance, param_importance
from hpsearch.report.search import SearchView, StageView, region_rule

#: fANOVA for small stages, PED-ANOVA for large ones: see ``importance.AUTO_FANOVA_MAX``.
DEFAULT_EVALUATOR = "auto"


@dataclass(frozen=True)
class StageReport:
    """One stage and what the report says about it."""

    view: StageView
    importance: Importance
    advice: list[Advice]
    region: list[RegionRow]  # the region handed on, one row per parameter
    sure: Sureness | None = None  # how sure that region is (regions.sureness)


@dataclass(frozen=True)
class Report:
    search: SearchView
    stages: list[StageReport]

    @property
    def promising(self) -> Region | None:
        """The region the last stage with results hands on: where to look next."""
        regions = [s.view.handed_on for s in self.stages if s.view.handed_on is not None]
        return regions[-1] if regions else None

    @property
    def advice(self) -> list[Advice]:
        return [a for s in self.stages for a in s.advice]

    def key_params(self) -> list[str]:
        """Numeric parameters, most important first: by the earliest stage that could rank
        them (the widest ranges, where importance means most), else in the file's order."""
        numeric = [p.name for p in self.search.spec.space if p.numeric]
        for s in self.stages:
            ranked = [n for n in s.importance.values if n in numeric]
            if len(ranked) >= min(2, len(numeric)):
                return ranked + [n for n in numeric if n not in ranked]
        return numeric


def analyze(view: SearchView, evaluator: str = DEFAULT_EVALUATOR) -> Report:
    stages = view.stages
    return Report(
        view,
        [
            analyze_stage(view.spec, v, evaluator, stages[i + 1] if i + 1 < len(stages) else None)
            for i, v in enumerate(stages)
        ],
    )


def analyze_stage(
    spec: StudySpec,
    v: StageView,
    evaluator: str = DEFAULT_EVALUATOR,
    nxt: StageView | None = None,
) -> StageReport:
    """What the report says about one stage: all it needs is that stage's view (and
    whether the next stage is prepared yet: ``nxt``, None when unread), so the dashboard
    note of a finished stage is computed from a read of that stage alone."""
    return StageReport(
        v,
        param_importance(v.records, v.space, spec.direction, evaluator),
        stage_advice(
            v.stage.name,
            v.records,
            v.space,
            v.handed_on,
            direction=spec.direction,
            last=v.index == len(spec.stages) - 1,
            fix=edge_fix(spec, v.index, nxt),
        ),
        region_rows(v.handed_on) if v.handed_on is not None else [],
        _sureness(spec, v),
    )


def _sureness(spec: StudySpec, v: StageView) -> Sureness | None:
    if v.handed_on is None or v.space is None:
        return None
    keep, margin = region_rule(spec, v.index)
    return sureness(v.space, v.records, keep=keep, margin=margin, direction=spec.direction)


def edge_fix(spec: StudySpec, index: int, nxt: StageView | None) -> EdgeFix | None:
    """Where the ranges that search past stage ``index``'s pressed edges can go: the next
    stage while it is not prepared (``nxt`` unread counts as not prepared: a note is
    written before the next stage is), else a stage appended after the last one (a copy
    of it, under a new name). None for a planned search (its file has no [[stage]]
    tables) and for a next stage already prepared (it searched past the edge on its own)."""
    if spec.budget is not None:
        return None
    if index + 1 < len(spec.stages):
        prepared = nxt is not None and nxt.space is not None
        return None if prepared else EdgeFix(spec.stages[index + 1], new=False)
    last = spec.stages[index]
    names = {s.name for s in spec.stages}
    name = next(f"{last.name}-{n}" for n in itertools.count(2) if f"{last.name}-{n}" not in names)
    return EdgeFix(StageSpec(name, last.trials, last.epochs, last.sampler), new=True)
