"""Variants of the default plan, measured against it (``search_efficiency.py --plan NAME``).

Each is a function of ``(budget, max_epochs)`` as ``hpsearch.core.plan.default_plan`` is; the
tables in docs/benchmarks.md ("The default plan") name them. Kept so that the figures
behind the choice can be rerun.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from hpsearch.core import plan as default
from hpsearch.core import prior
from hpsearch.core.spec import StageSpec

Plan = Callable[[int, int], tuple[StageSpec, ...]]


def previous(budget: int, max_epochs: int) -> tuple[StageSpec, ...]:
    """The default plan before early stopping: a fifth of the budget on 1-epoch Sobol runs
    (a ninth of a full run), then full-length TPE in the box of the best 3 (2% past 150
    runs), margin 0.5, those 3 promoted first; one full-length stage below 6 coarse runs."""
    short = max(1, round(max_epochs / 9))
    fine = max(1, math.floor(budget * 4 / 5) // max_epochs)
    coarse = (budget - fine * max_epochs) // short
    if coarse < 6:
        return (StageSpec("full", budget // max_epochs, max_epochs, "sobol"),)
    keep = min(1.0, max(0.02, 3 / coarse))
    return (
        StageSpec("coarse", coarse, short, "sobol"),
        StageSpec(
            "fine", fine, max_epochs, "tpe", keep=keep, margin=0.5, promote=min(3, (fine + 1) // 2)
        ),
    )


def _promoting(min_epochs: int | None = None) -> Plan:
    """The default plan, its fine stage first re-running the best 3 coarse runs (promotion,
    as the previous plan did), stopping runs from ``min_epochs`` on if given."""

    def plan(budget: int, max_epochs: int) -> tuple[StageSpec, ...]:
        *before, last = default.default_plan(budget, max_epochs)
        last = dataclasses.replace(
            last,
            min_epochs=min_epochs or last.min_epochs,
            promote=min(3, (last.trials + 1) // 2),
        )
        return (*before, last)

    return plan


def _planned(budget: int, max_epochs: int, coarse_share: float) -> tuple[StageSpec, ...]:
    """The default plan with ``plan.COARSE_MIN_SHARE`` at ``coarse_share`` (0: the coarse
    stage stops runs from epoch 1, as before issue 19's third round), split included."""
    saved = default.COARSE_MIN_SHARE
    default.COARSE_MIN_SHARE = coarse_share
    try:
        return default.default_plan(budget, max_epochs)
    finally:
        default.COARSE_MIN_SHARE = saved


def _fine_model(model: str) -> Plan:
    """The plan the fine stage's models were measured on (the coarse stage from epoch 1),
    its fine stage's sampler ``model`` (``core.prior.MODELS``): set in the process that
    runs the search, as the variant is planned."""

    def plan(budget: int, max_epochs: int) -> tuple[StageSpec, ...]:
        prior.MODEL = model
        return _planned(budget, max_epochs, 0)

    return plan


def _coarse_asha(min_share: float, reduction_factor: int = default.REDUCTION_FACTOR) -> Plan:
    """The plan with its first stage's ASHA (the coarse stage's, or the one stage's) from
    ``min_share`` of a run on (0: epoch 1) at ``reduction_factor`` (issue 19, hypothesis c:
    rungs that trust biased or noisy short runs less). ``coarse-from-epoch-1`` is the
    default plan before this round."""

    def plan(budget: int, max_epochs: int) -> tuple[StageSpec, ...]:
        first, *rest = _planned(budget, max_epochs, min_share)
        if first.stop_early != "asha":
            return (first, *rest)
        least = min(max(1, round(max_epochs * min_share)), max_epochs - 1)
        first = dataclasses.replace(first, reduction_factor=reduction_factor, min_epochs=least)
        return (first, *rest)

    return plan


def _fine_min_share(share: float) -> Plan:
    """The plan before this round (the coarse stage from epoch 1), its fine stage stopping
    no run before ``share`` of a full run in place of ``FINE_MIN_SHARE`` (crossing curves:
    a run that trails at a third may lead at the end)."""

    def plan(budget: int, max_epochs: int) -> tuple[StageSpec, ...]:
        *before, last = _planned(budget, max_epochs, 0)
        if not before or last.stop_early != "asha":
            return (*before, last)
        least = min(max(1, round(max_epochs * share)), max_epochs - 1)
        return (*before, dataclasses.replace(last, min_epochs=least))

    return plan


VARIANTS: dict[str, Plan] = {
    "default": default.default_plan,
    "previous": previous,
    "fine-from-epoch-1-promote-3": _promoting(min_epochs=1),
    "promote-3": _promoting(),
    **{f"fine-{m}": _fine_model(m) for m in prior.MODELS},
    "coarse-from-epoch-1": _coarse_asha(0),
    "coarse-rf2": _coarse_asha(0, reduction_factor=2),
    "coarse-min-ninth": _coarse_asha(1 / 9),
    "coarse-min-third-one-stage-too": _coarse_asha(1 / 3),
    "fine-min-two-thirds": _fine_min_share(2 / 3),
}
