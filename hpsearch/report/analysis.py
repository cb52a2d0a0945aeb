"""Everything a report says about a search, computed once from its records.

The terminal, HTML and dashboard views all show the same facts: per stage, the importance
of each parameter, the warnings, and the region handed on, row by row. They are computed
here, so the views only format (``blocks`` holds the tables and lines they share;
``terminal``, ``page`` and ``note`` render them).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hpsearch.core.evidence import ALPHA, Effect, effects, thin_region
from hpsearch.core.evidence import MIN_RUNS as EFFECT_RUNS
from hpsearch.core.regions import FinalRegion, Region, Sureness, final_region, sureness
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
    #: the last stage's: the promising region of the whole search and its confidence
    final: FinalRegion | None = None
    #: each parameter's effect against noise (evidence.effects); None: too few runs
    effects: dict[str, Effect] | None = None

    minimize: bool = True

    @property
    def region_thin(self) -> bool:
        """The region handed on was spanned by too few runs to say much."""
        h = self.view.handed_on
        return h is not None and thin_region(len(h.kept))

    def evidence_line(self) -> str | None:
        """Which parameters' effects stand out from noise, or that none does."""
        if self.view.space is None or not self.view.finished:
            return None
        if self.effects is None:
            return (
                "which parameters matter: the evidence is thin (fewer than "
                f"{EFFECT_RUNS} usable runs)"
            )
        above = [e.name for e in self.effects.values() if e.matters]
        n = sum(1 for r in self.view.records if r.finished and r.state == "COMPLETE")
        if not above:
            return (
                f"which parameters matter: the evidence is thin (no parameter's effect "
                f"stands out from noise over {n} runs, permutation test p <= {ALPHA:g})"
            )
        rest = [name for name in self.effects if name not in above]
        line = f"matters (above noise over {n} runs, p <= {ALPHA:g}): {', '.join(above)}"
        return line + (f"; within noise: {', '.join(rest)}" if rest else "")


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
    reports = [
        # the last stage's region from the whole search's runs, not the last stage's
        analyze_stage(
            view.spec, v, evaluator, stages[i + 1] if i + 1 < len(stages) else None, runs=stages
        )
        for i, v in enumerate(stages)
    ]
    return Report(view, reports)


def search_region(spec: StudySpec, stages: list[StageView]) -> FinalRegion | None:
    """The promising region of a search (``regions.final_region``) from its stages' runs."""
    started = [(v.space, v.records) for v in stages if v.space is not None]
    if not started or not any(v.finished for v in stages):
        return None
    return final_region(started, direction=spec.direction, original=spec.space)


def analyze_stage(
    spec: StudySpec,
    v: StageView,
    evaluator: str = DEFAULT_EVALUATOR,
    nxt: StageView | None = None,
    *,
    runs: list[StageView] | None = None,
) -> StageReport:
    """What the report says about one stage: all it needs is that stage's view (and
    whether the next stage is prepared yet: ``nxt``, None when unread), so the dashboard
    note of a finished stage is computed from a read of that stage alone. The last
    stage's region (``final``) is drawn from the runs of ``runs`` (the whole search's,
    for the report and the last stage's note), else from that stage's own: computed
    once, the one asked for (it fits a Gaussian process to every run)."""
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
        search_region(spec, runs or [v]) if v.index == len(spec.stages) - 1 else None,
        effects(v.records, v.space, spec.direction) if v.space is not None else None,
        spec.direction == "minimize",
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
