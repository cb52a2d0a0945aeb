"""The default plan: stages built from a total epoch budget, for users who give ``budget``.

Most users do not know how to split a budget into stages. The rule, chosen by measurement
(``benchmarks/search_efficiency.py``, 30 seeds per problem; docs/benchmarks.md has the
tables and the variants that lost):

- **coarse**: a third of the budget on full-length runs at scrambled Sobol points over the
  whole space, stopped early by ASHA (a run goes past epoch 1, then 3, ... only while in
  the top third of the runs that reached that epoch). Most runs stop after an epoch or
  three, so the stage sees several times more points than a third of the budget's full
  runs, and the few that go the distance are full-length results, not 1-epoch guesses.
- **fine**: the other two thirds on full-length TPE runs inside the box of the best
  ``KEEP`` of the coarse runs that went the distance, widened by ``MARGIN``, also stopped
  by ASHA but never before ``FINE_MIN_SHARE`` of a run.

Why this shape, against the plan before it (a fifth on 1-epoch runs, then full-length TPE
in the box of the 3 best, promoted first): on a problem whose short runs mislead (the
``crossing`` benchmark problem: the 1-epoch optimum 0.75 decades off) the box of 1-epoch
winners missed the optimum in 80% of seeds and the plan lost to flat random search; the
box of full-length survivors held it far more often. Stopping in the fine stage is what
pays on smooth problems (Branin), but stopping there after one epoch threw the good runs
of ``crossing`` away; from a third of a run on it keeps them. No promotion: the coarse
winners already ran at full length.

Pure and deterministic: a function of ``(budget, max_epochs)`` only, so the same study file
always plans the same stages and workers, resume and ``--dry-run`` agree. (Which runs ASHA
stops depends on the order results arrive in: with several workers, on timing.)
"""

from __future__ import annotations

import dataclasses

from hpsearch.core.stage_spec import StageSpec

#: Share of the budget the coarse stage gets; the rest goes to TPE in the box.
COARSE_SHARE = 1 / 3
#: Sampler of the coarse stage: scrambled Sobol covers the full box more evenly than random
#: points for the same count, which is what a wide coarse stage is for.
COARSE_SAMPLER = "sobol"
#: Sampler of the fine stage: TPE models where, inside the narrowed box, full-length runs
#: are good. (Its slots are filled at run time, so with several workers its points depend
#: on timing; the coarse stage's points stay a pure function of the seed.)
FINE_SAMPLER = "tpe"
#: ASHA's reduction factor in both stages: keep 1 run in 3 at each rung.
REDUCTION_FACTOR = 3
#: The fine stage stops no run before this share of a full run: its runs are already in
#: the promising box, where short values mislead most about which is best.
FINE_MIN_SHARE = 1 / 3
#: Share of the coarse runs that went the distance whose span is the fine stage's box, and
#: its widening on each side as a fraction of the span.
KEEP = 0.5
MARGIN = 0.5
#: Fewest full runs' worth of coarse budget worth narrowing from; below it the plan is one
#: stage over the whole space.
MIN_COARSE_RUNS = 2
#: What --dry-run prints under the plan: why these stages (one source with the rule above).
WHY = (
    "why: the coarse third tries many points over the whole space, ASHA stopping those that "
    "trail, so the box comes from full-length survivors rather than 1-epoch guesses (short "
    "runs can mislead); TPE then models that box, stopping no run before a third of its "
    "epochs"
)


def _stopping(stage: StageSpec, min_epochs: int) -> StageSpec:
    """``stage`` stopped early by ASHA from ``min_epochs`` on, where its length allows it
    (a 1-epoch run has no rung to stop at)."""
    if stage.epochs < 2:
        return stage
    least = min(max(1, min_epochs), stage.epochs - 1)
    return dataclasses.replace(
        stage, stop_early="asha", reduction_factor=REDUCTION_FACTOR, min_epochs=least
    )


def default_plan(budget: int, max_epochs: int) -> tuple[StageSpec, ...]:
    """Stages that spend at most ``budget`` epochs, every run ``max_epochs`` long.

    Raises:
        ValueError: ``budget < max_epochs`` (not even one full run fits) or either is < 1.
            The spec checks this first and reports it in its own template.
    """
    if budget < max_epochs or max_epochs < 1:
        raise ValueError(
            f"`budget >= max_epochs >= 1` must hold, but got budget = {budget!r}, "
            f"max_epochs = {max_epochs!r}"
        )
    runs = budget // max_epochs
    coarse = int(runs * COARSE_SHARE)
    if coarse < MIN_COARSE_RUNS or runs - coarse < 1:
        return (_stopping(StageSpec("full", runs, max_epochs, COARSE_SAMPLER), 1),)
    fine = StageSpec("fine", runs - coarse, max_epochs, FINE_SAMPLER, keep=KEEP, margin=MARGIN)
    return (
        _stopping(StageSpec("coarse", coarse, max_epochs, COARSE_SAMPLER), 1),
        _stopping(fine, round(max_epochs * FINE_MIN_SHARE)),
    )


def extend_plan(
    planned: tuple[StageSpec, ...], prepared: int, budget: int, max_epochs: int
) -> tuple[StageSpec, ...]:
    """The plan for a raised ``budget`` when the first ``prepared`` of the ``planned``
    stages are prepared already: it appends rather than re-plans what ran.

    The prepared stages keep their shape (their slots are queued or ran); the budget the
    stages before the last leave goes to the last stage as more runs at its epochs. With
    nothing prepared, the whole plan is made afresh.
    """
    if not prepared:
        return default_plan(budget, max_epochs)
    *before, last = planned
    spent = sum(s.trials * s.epochs for s in before)
    trials = max(last.trials, (budget - spent) // last.epochs)
    return (*before, dataclasses.replace(last, trials=trials))
