"""Everything a report says about a search, computed once from its records.

The terminal, HTML and dashboard views all show the same facts: per stage, the importance
of each parameter, the warnings, and the region handed on, row by row. They are computed
here, so the views only format.
"""

from __future__ import annotations

from dataclasses import dataclass

from hpsearch.regions import Region, Sureness, sureness
from hpsearch.report.advice import Advice, stage_advice
from hpsearch.report.describe import RegionRow, region_rows
from hpsearch.report.importance import Importance, param_importance
from hpsearch.report.search import SearchView, StageView, region_rule
from hpsearch.space import CategoricalParam

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
        numeric = [p.name for p in self.search.spec.space if not isinstance(p, CategoricalParam)]
        for s in self.stages:
            ranked = [n for n in s.importance.values if n in numeric]
            if len(ranked) >= min(2, len(numeric)):
                return ranked + [n for n in numeric if n not in ranked]
        return numeric


def analyze(view: SearchView, evaluator: str = DEFAULT_EVALUATOR) -> Report:
    stages = []
    for v in view.stages:
        stages.append(
            StageReport(
                v,
                param_importance(v.records, v.space, view.spec.direction, evaluator),
                stage_advice(
                    v.stage.name,
                    v.records,
                    v.space,
                    v.handed_on,
                    direction=view.spec.direction,
                    last=v.index == len(view.stages) - 1,
                ),
                region_rows(v.handed_on) if v.handed_on is not None else [],
                _sureness(view, v),
            )
        )
    return Report(view, stages)


def _sureness(view: SearchView, v: StageView) -> Sureness | None:
    if v.handed_on is None or v.space is None:
        return None
    keep, margin = region_rule(view.spec, v.index)
    return sureness(v.space, v.records, keep=keep, margin=margin, direction=view.spec.direction)
