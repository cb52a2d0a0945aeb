"""Variants of the default plan, measured against it (``search_efficiency.py --plan NAME``).

Each is a function of ``(budget, max_epochs)`` as ``hpsearch.plan.default_plan`` is; the
tables in docs/benchmarks.md ("The default plan") name them. Kept so that the figures
behind the choice can be rerun.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from hpsearch.plan import default_plan
from hpsearch.spec import StageSpec

Plan = Callable[[int, int], tuple[StageSpec, ...]]


def _asha(stage: StageSpec, min_epochs: int = 1) -> StageSpec:
    return dataclasses.replace(stage, stop_early="asha", reduction_factor=3, min_epochs=min_epochs)


def fine_asha(budget: int, max_epochs: int) -> tuple[StageSpec, ...]:
    """The plan of before, its full-length stage stopping runs early (ASHA, 1 epoch on)."""
    stages = default_plan(budget, max_epochs)
    return (*stages[:-1], _asha(stages[-1]))


def fine_asha_third(budget: int, max_epochs: int) -> tuple[StageSpec, ...]:
    """As ``fine_asha``, its one rung at a third of a full run: short runs' bias hurts less."""
    stages = default_plan(budget, max_epochs)
    return (*stages[:-1], _asha(stages[-1], min_epochs=max(1, max_epochs // 3)))


def fine_median(budget: int, max_epochs: int) -> tuple[StageSpec, ...]:
    """As ``fine_asha``, with the median rule from a third of a full run on."""
    stages = default_plan(budget, max_epochs)
    fine = dataclasses.replace(stages[-1], stop_early="median", min_epochs=max(1, max_epochs // 3))
    return (*stages[:-1], fine)


def _coarse_asha(share: float, keep: float, fine_sampler: str = "tpe") -> Plan:
    """Coarse: ``share`` of the budget on full-length Sobol runs that ASHA stops from
    epoch 1 on, over the whole space; fine: TPE with ASHA in the box of the best
    ``keep`` of the coarse runs that went the distance, the best 3 promoted first."""

    def plan(budget: int, max_epochs: int) -> tuple[StageSpec, ...]:
        coarse = max(1, math.floor(budget * share) // max_epochs)
        fine = budget // max_epochs - coarse
        return (
            _asha(StageSpec("coarse", coarse, max_epochs, "sobol")),
            _asha(
                StageSpec(
                    "fine",
                    fine,
                    max_epochs,
                    fine_sampler,
                    keep=keep,
                    margin=0.5,
                    promote=min(3, (fine + 1) // 2),
                )
            ),
        )

    return plan


def short_then_asha(budget: int, max_epochs: int) -> tuple[StageSpec, ...]:
    """A fifth on 1-epoch Sobol runs as before, then TPE + ASHA in a wider box (keep
    the best 5%, margin 1): short runs' bias hurts less when the box is wider."""
    coarse, fine = default_plan(budget, max_epochs)
    keep = max(0.05, 5 / coarse.trials)
    return coarse, _asha(dataclasses.replace(fine, keep=keep, margin=1.0))


def _wide(fine_rule: str | None, min_share: float = 1 / 3) -> Plan:
    """A fifth on 1-epoch Sobol runs as before, then TPE in the wider box of the best 5%
    (margin 1), stopping runs early by ``fine_rule`` from ``min_share`` of a run on."""

    def plan(budget: int, max_epochs: int) -> tuple[StageSpec, ...]:
        stages = default_plan(budget, max_epochs)
        if len(stages) == 1:
            return stages
        coarse, fine = stages
        fine = dataclasses.replace(fine, keep=max(0.05, 5 / coarse.trials), margin=1.0)
        if fine_rule is not None:
            least = max(1, round(max_epochs * min_share))
            fine = dataclasses.replace(fine, stop_early=fine_rule, min_epochs=least)
        return coarse, fine

    return plan


VARIANTS: dict[str, Plan] = {
    "wide": _wide(None),
    "wide-asha-third": _wide("asha"),
    "before": default_plan,
    "fine-asha": fine_asha,
    "fine-asha-third": fine_asha_third,
    "fine-median": fine_median,
    "coarse-asha-third": _coarse_asha(1 / 3, 0.5),
    "coarse-asha-half": _coarse_asha(1 / 2, 0.5),
    "coarse-asha-third-keep25": _coarse_asha(1 / 3, 0.25),
    "short-then-asha": short_then_asha,
}
