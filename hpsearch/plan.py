"""The default plan: stages built from a total epoch budget, for users who give ``budget``.

Most users do not know how to split a budget into stages. The rule here follows successive
halving (Jamieson & Talwalkar 2016; Hyperband's most exploratory bracket): run lengths grow
geometrically by ``ETA`` from 1 epoch to ``max_epochs``, and every rung gets an equal share
of the budget, so the coarse stage has ``ETA**k`` times as many runs as the final one.
Unlike successive halving, a later stage does not continue the survivors: it draws fresh
points in the region the previous stage's top ``keep`` fraction spans (coarse-to-fine).

Pure and deterministic: a function of ``(budget, max_epochs)`` only, so the same study file
always plans the same stages and workers, resume and ``--dry-run`` agree.
"""

from __future__ import annotations

import math

from hpsearch.spec import StageSpec

#: Growth of run length between stages (successive halving's reduction factor): 3 keeps
#: each rung's runs long enough to rank the next and gives ~log3(max_epochs) + 1 stages.
ETA = 3
#: Sampler of the first stage: scrambled Sobol covers the full box more evenly than random
#: points for the same count, which is what a wide coarse stage is for.
COARSE_SAMPLER = "sobol"
#: Sampler of later stages, inside a region already narrowed to the promising box.
FINE_SAMPLER = "random"
#: Fraction of a stage whose span defines the next region: 1/ETA, as successive halving
#: keeps; wide enough to survive the noise and bias of short runs.
KEEP = 1 / ETA
#: Widening of the kept span on each side: short runs are biased, so do not cut tight.
MARGIN = 0.25
#: Fewest runs a stage that narrows the next one must have: with KEEP = 1/3, 6 runs keep
#: 2, the least that spans a box rather than a point.
MIN_NARROWING_TRIALS = 6


def epoch_ladder(max_epochs: int) -> list[int]:
    """Run lengths 1, ..., max_epochs growing by ``ETA`` (rounded, duplicates dropped)."""
    if max_epochs < 1:
        raise ValueError(f"`max_epochs >= 1` must hold, but got max_epochs = {max_epochs!r}")
    rungs = math.ceil(math.log(max_epochs, ETA) - 1e-9) if max_epochs > 1 else 0
    ladder = sorted({max(1, round(max_epochs / ETA ** (rungs - k))) for k in range(rungs + 1)})
    return ladder


def _candidate_ladders(max_epochs: int) -> list[list[int]]:
    """Ladders from the full one down to a single full-length stage: intermediate rungs go
    first (the 1-epoch coarse stage is the cheapest information there is)."""
    full = epoch_ladder(max_epochs)
    ladders = [full]
    for cut in range(2, len(full)):
        ladders.append([full[0], *full[cut:]])
    if full != [max_epochs]:
        ladders.append([max_epochs])
    return ladders


def _split(budget: int, ladder: list[int]) -> list[int] | None:
    """Trials per rung for an equal share of ``budget`` each; the remainder the floors
    leave goes to the first rung (its runs are the shortest, so it wastes the least).
    ``None`` if a narrowing stage would get too few runs or the final one none."""
    share = budget // len(ladder)
    trials = [share // e for e in ladder]
    spare = budget - sum(t * e for t, e in zip(trials, ladder, strict=True))
    trials[0] += spare // ladder[0]
    if trials[-1] < 1 or any(t < MIN_NARROWING_TRIALS for t in trials[:-1]):
        return None
    return trials


def stage_names(count: int) -> list[str]:
    if count == 1:
        return ["full"]
    return ["coarse", *(f"fine-{i}" for i in range(1, count))]


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
    # The last candidate, one stage at max_epochs, always fits since budget >= max_epochs.
    ladder, trials = next(
        (lad, t)
        for lad in _candidate_ladders(max_epochs)
        if (t := _split(budget, lad)) is not None
    )
    names = stage_names(len(ladder))
    first = StageSpec(names[0], trials[0], ladder[0], COARSE_SAMPLER)  # nothing to narrow
    return (
        first,
        *(
            StageSpec(name, t, e, FINE_SAMPLER, keep=KEEP, margin=MARGIN)
            for name, t, e in zip(names[1:], trials[1:], ladder[1:], strict=True)
        ),
    )
