"""The default plan: stages built from a total epoch budget, for users who give ``budget``.

Most users do not know how to split a budget into stages. The rule, chosen by measurement
(``benchmarks/search_efficiency.py``, 30 seeds per problem; docs/benchmarks.md has the
tables and the variants that lost):

- **coarse**: a third of the budget on full-length runs at scrambled Sobol points over the
  whole space, stopped early by ASHA from ``COARSE_MIN_SHARE`` of a run on (a run goes
  past a third of its epochs, then three times that, ... only while in the top third of
  the runs that reached that epoch). Most runs stop there, so the stage sees more points
  than a third of the budget's full runs, and the few that go the distance are
  full-length results, not guesses from values that are biased or noisy after an epoch.
- **fine**: the other two thirds on full-length TPE runs, TPE seeded with every coarse
  run (``hpsearch.engine.fine``: runs that went the distance as results, stopped ones for
  ranking only), starting in the box of the best ``KEEP`` of the coarse runs that went
  the distance, widened by ``MARGIN``, which grows past a side the best run presses
  (``hpsearch.core.prior``: the box is where the search starts, not a wall); also
  stopped by ASHA but never before ``FINE_MIN_SHARE`` of a run.
- **one stage** where the budget is too small for coarse-to-fine: when a coarse third
  would carry fewer than ``MIN_SURVIVORS`` runs to full length under ASHA (estimated by
  ``asha_survivors``), there is no box worth cutting, and the whole budget goes to Sobol
  points over the whole space, stopped by ASHA from epoch 1 (from a third of a run it
  lost on the one tuning problem planned as one stage, ``biased-log6``). docs/plans.md
  tabulates the plans from 50 to 20,000 epochs (``benchmarks/plan_table.py``).

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

from hpsearch.core import prior
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
#: The coarse stage of a coarse-to-fine plan stops no run before this share of a full run.
#: From epoch 1 (the plan before, issue 19), its first rung judged runs by values that are
#: biased (``crossing``: fast starters end worse) or noisy (``noisy-mixed``: noise 10x the
#: differences after one epoch) there, and the wrong survivors cut the box; from a third
#: the tuning set's median regret fell on both (docs/plans.md has the figures).
COARSE_MIN_SHARE = 1 / 3
#: The fine stage stops no run before this share of a full run: its runs are already in
#: the promising box, where short values mislead most about which is best.
FINE_MIN_SHARE = 1 / 3
#: Share of the coarse runs that went the distance whose span is the fine stage's box, and
#: its widening on each side as a fraction of the span.
KEEP = 0.5
MARGIN = 0.5
#: Fewest coarse runs expected to go the full length (``asha_survivors``) worth cutting a
#: box from: with ``KEEP`` a half, the box of the best 2 of 3, so that no single run
#: defines it. Below it the plan is one stage over the whole space. (A judgement, not a
#: measurement: every benchmark problem's budget is well above it.)
MIN_SURVIVORS = 3


def _stopping(stage: StageSpec, min_epochs: int) -> StageSpec:
    """``stage`` stopped early by ASHA from ``min_epochs`` on, where its length allows it
    (a 1-epoch run has no rung to stop at)."""
    if stage.epochs < 2:
        return stage
    least = min(max(1, min_epochs), stage.epochs - 1)
    return dataclasses.replace(
        stage, stop_early="asha", reduction_factor=REDUCTION_FACTOR, min_epochs=least
    )


def rungs(stage: StageSpec) -> list[int]:
    """The epochs after which the stage's ASHA may stop a run (none without ASHA)."""
    if stage.stop_early != "asha":
        return []
    out, e = [], stage.min_epochs
    while e < stage.epochs:
        out.append(e)
        e *= stage.reduction_factor
    return out


def asha_survivors(stage: StageSpec) -> tuple[float, float]:
    """``(runs started, runs that go the full length)`` expected of the stage's budget
    under ASHA: a run reaches each rung's next length with probability
    ``1 / reduction_factor``, and the epochs stopped runs save buy more runs. (ASHA is
    asynchronous, so the counts vary around these; without ASHA both are ``trials``.)"""
    marks = rungs(stage)
    if not marks:
        return float(stage.trials), float(stage.trials)
    cost, reach = float(marks[0]), 1.0
    for k, r in enumerate(marks):
        nxt = marks[k + 1] if k + 1 < len(marks) else stage.epochs
        reach /= stage.reduction_factor
        cost += reach * (nxt - r)
    started = stage.budget / cost
    return started, started * reach


def coarse_stage(runs: int, max_epochs: int) -> StageSpec:
    """The coarse third of ``runs`` full runs: Sobol points stopped by ASHA from
    ``COARSE_MIN_SHARE`` of a run on."""
    stage = StageSpec("coarse", int(runs * COARSE_SHARE), max_epochs, COARSE_SAMPLER)
    return _stopping(stage, round(max_epochs * COARSE_MIN_SHARE))


def _coarse_to_fine(runs: int, max_epochs: int) -> bool:
    """Whether ``runs`` full runs split into a coarse third that carries enough runs the
    full length to cut a box from, and a fine stage of at least one run."""
    coarse = coarse_stage(runs, max_epochs)
    if coarse.trials < 1 or runs - coarse.trials < 1:
        return False
    return asha_survivors(coarse)[1] >= MIN_SURVIVORS - 1e-9


def least_budget(max_epochs: int) -> int:
    """The smallest budget for which the default plan is coarse-to-fine."""
    runs = 1
    while not _coarse_to_fine(runs, max_epochs):
        runs += 1
    return runs * max_epochs


def why(stages: tuple[StageSpec, ...] | list[StageSpec], budget: int, max_epochs: int) -> str:
    """What --dry-run prints under the plan: why these stages, from their own numbers (the
    stored stages, so it stays true of a plan stored by an earlier version too)."""
    stages = tuple(stages)
    runs = budget // max_epochs
    if len(stages) == 1:
        stage = stages[0]
        c = coarse_stage(runs, max_epochs)
        started, _ = asha_survivors(stage)
        _, full = asha_survivors(c)
        too_small = (
            f"why: one stage, as {budget} epochs is too small a budget for coarse-to-fine: "
            f"it buys {runs} full run(s) of {max_epochs} epochs, and a coarse third "
            f"({c.trials} runs' worth) would carry about {full:.1f} run(s) the full length, "
            f"fewer than the {MIN_SURVIVORS} a box to narrow to needs"
        )
        return (
            f"{too_small}; so {_what(stage, started)}, over the whole space "
            f"(coarse-to-fine from budget = {least_budget(max_epochs)} epochs on)"
        )
    parts = []
    for i, stage in enumerate(stages):
        started, full = asha_survivors(stage)
        share = f"{stage.budget / budget:.0%} of the budget, {stage.budget} epochs"
        if i == 0:
            parts.append(
                f"{stage.name} ({share}): {_what(stage, started)}, over the whole space, "
                f"about {full:.0f} of them the full {stage.epochs} epochs: the box comes from "
                "those survivors rather than from short runs, which can mislead"
            )
        else:
            model = (
                f"{stage.sampler.upper()} seeded with every earlier run (stopped ones for "
                f"ranking only), {prior.box_role()}"
                if stage.sampler == "tpe"
                else f"{stage.sampler} points inside the box"
            )
            stop = rungs(stage)
            stop_text = f", stopping no run before epoch {stop[0]}" if stop else ""
            parts.append(f"{stage.name} ({share}): {model}{stop_text}")
    return "why: " + "; ".join(parts)


def _what(stage: StageSpec, started: float) -> str:
    """``Sobol points, ASHA stopping runs that trail at epoch 1, 3 (about 40 runs)``."""
    marks = rungs(stage)
    name = {"sobol": "Sobol", "tpe": "TPE", "random": "random", "grid": "grid"}
    what = f"{name.get(stage.sampler, stage.sampler)} points"
    if not marks:
        return f"{what} ({stage.trials} runs, none stopped early)"
    at = ", ".join(map(str, marks))
    return f"{what}, ASHA stopping runs that trail at epoch {at} (about {started:.0f} runs)"


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
    if not _coarse_to_fine(runs, max_epochs):
        return (_stopping(StageSpec("full", runs, max_epochs, COARSE_SAMPLER), 1),)
    fine = StageSpec("fine", runs - coarse, max_epochs, FINE_SAMPLER, keep=KEEP, margin=MARGIN)
    return (coarse_stage(runs, max_epochs), _stopping(fine, round(max_epochs * FINE_MIN_SHARE)))


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
