"""The default plan: stages built from a total epoch budget, for users who give ``budget``.

Most users do not know how to split a budget into stages. The rule, chosen by measurement
(``benchmarks/search_efficiency.py``; docs/benchmarks.md has the
tables and the variants that lost):

- **coarse**: a fifth of the budget on short runs (``max_epochs / 9``, at least 1 epoch:
  the shortest rung of successive halving with a reduction factor of 3 over 3 rungs) at
  scrambled Sobol points over the whole space;
- **fine**: the other four fifths on full-length runs inside the box the few best coarse
  runs span (their top ``KEEP`` fraction, at least ``KEEP_AT_LEAST`` runs), widened by
  ``MARGIN``: first the ``PROMOTE`` best coarse runs again at full length (successive
  halving's promotion), then TPE, which sees the promoted runs' results.

Why not successive halving's equal shares over 1, 3, 9 epochs with the top third kept
(the first version of this plan): the span of a third of the runs covered the whole range
of every parameter on every benchmark problem, so the fine stages searched the full box
with fewer runs and lost to flat random search. A box around the *few* best runs does
narrow; a second narrowing from biased short runs compounded the bias (an lr optimum half
a decade off at 1 epoch was cut out), so there is one narrowing; and random points inside
the box lost to TPE inside it, which adapts to where the full-length runs are good.
Promotion gives a user a full-length result as soon as the coarse stage ends, and TPE good
seeds; a fifth rather than a third for the coarse stage starts the full runs earlier and
leaves TPE more of them.

Pure and deterministic: a function of ``(budget, max_epochs)`` only, so the same study file
always plans the same stages and workers, resume and ``--dry-run`` agree.
"""

from __future__ import annotations

import dataclasses
import math

from hpsearch.stage_spec import StageSpec

#: Full runs cost this many times a coarse run (successive halving's eta**2 with eta = 3).
COARSE_RATIO = 9
#: Share of the budget the coarse stage gets; the rest goes to full-length runs. A fifth:
#: with promotion, it reached good full-length results earlier than a third, a quarter or a
#: sixth, at the same final quality (a half left TPE too few full runs).
COARSE_SHARE = 1 / 5
#: Sampler of the coarse stage: scrambled Sobol covers the full box more evenly than random
#: points for the same count, which is what a wide coarse stage is for.
COARSE_SAMPLER = "sobol"
#: Sampler of the fine stage: TPE models where, inside the narrowed box, full-length runs
#: are good. (Its slots are filled at run time, so with several workers its points depend
#: on timing; the coarse stage stays a pure function of the seed.)
FINE_SAMPLER = "tpe"
#: Fraction of the coarse runs whose span is the fine stage's box, and the fewest runs kept:
#: the top 3 (2% past 150 runs) narrow every benchmark problem; a third never did.
KEEP = 0.02
KEEP_AT_LEAST = 3
#: Widening of the kept span on each side, as a fraction of the span: short runs are
#: biased, so the box reaches past the coarse winners.
MARGIN = 0.5
#: The best coarse runs re-run first at full length (at most half the fine runs): as many
#: as define the box at its narrowest. 1, 3 and 5 measured alike; 0 was worse halfway.
PROMOTE = KEEP_AT_LEAST
#: Fewest coarse runs worth narrowing from; below it the plan is one full-length stage.
MIN_NARROWING_TRIALS = 6


def coarse_epochs(max_epochs: int) -> int:
    """Epochs of a coarse run: a ninth of a full run, at least 1."""
    return max(1, round(max_epochs / COARSE_RATIO))


def default_plan(budget: int, max_epochs: int) -> tuple[StageSpec, ...]:
    """Stages that spend at most ``budget`` epochs, the last of them at ``max_epochs``.

    Raises:
        ValueError: ``budget < max_epochs`` (not even one full run fits) or either is < 1.
            The spec checks this first and reports it in its own template.
    """
    if budget < max_epochs or max_epochs < 1:
        raise ValueError(
            f"`budget >= max_epochs >= 1` must hold, but got budget = {budget!r}, "
            f"max_epochs = {max_epochs!r}"
        )
    short = coarse_epochs(max_epochs)
    fine = max(1, math.floor(budget * (1 - COARSE_SHARE)) // max_epochs)
    coarse = (budget - fine * max_epochs) // short
    if coarse < MIN_NARROWING_TRIALS:
        return (StageSpec("full", budget // max_epochs, max_epochs, COARSE_SAMPLER),)
    keep = min(1.0, max(KEEP, KEEP_AT_LEAST / coarse))
    promote = min(PROMOTE, (fine + 1) // 2)
    return (
        StageSpec("coarse", coarse, short, COARSE_SAMPLER),
        StageSpec(
            "fine", fine, max_epochs, FINE_SAMPLER, keep=keep, margin=MARGIN, promote=promote
        ),
    )


def extend_plan(
    planned: tuple[StageSpec, ...], prepared: int, budget: int, max_epochs: int
) -> tuple[StageSpec, ...]:
    """The plan for a raised ``budget`` when the first ``prepared`` of the ``planned``
    stages are prepared already: it appends rather than re-plans what ran.

    The prepared stages keep their shape (their slots are queued or ran); the budget the
    stages before the last leave goes to the last stage as more runs at its epochs, and
    a last stage not yet prepared promotes as :func:`default_plan` would. With nothing
    prepared, the whole plan is made afresh.
    """
    if not prepared:
        return default_plan(budget, max_epochs)
    *before, last = planned
    spent = sum(s.trials * s.epochs for s in before)
    trials = max(last.trials, (budget - spent) // last.epochs)
    promote = last.promote
    if prepared < len(planned) and promote:
        promote = min(PROMOTE, (trials + 1) // 2)
    return (*before, dataclasses.replace(last, trials=trials, promote=promote))
