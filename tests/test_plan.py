"""The default plan: stages built from a total epoch budget."""

from __future__ import annotations

import itertools
import math

import pytest

from hpsearch.core import prior
from hpsearch.core.edits import classify
from hpsearch.core.plan import default_plan, why
from hpsearch.objectives.catalog import parse_spec, spec_from_dict

BUDGETS = [9, 10, 18, 40, 100, 270, 576, 1000, 5000]
MAX_EPOCHS = [1, 2, 3, 5, 9, 10, 27, 50]
GRID = [(b, e) for b, e in itertools.product(BUDGETS, MAX_EPOCHS) if b >= e]


def total(stages) -> int:
    return sum(s.trials * s.epochs for s in stages)


@pytest.mark.parametrize(("budget", "max_epochs"), GRID)
def test_the_plan_spends_most_of_the_budget_and_never_more(budget, max_epochs):
    stages = default_plan(budget, max_epochs)
    assert total(stages) <= budget
    # the floors can only leave less than one full run unspent
    assert budget - total(stages) < max_epochs


@pytest.mark.parametrize(("budget", "max_epochs"), GRID)
def test_runs_get_longer_and_the_last_stage_is_full_length(budget, max_epochs):
    stages = default_plan(budget, max_epochs)
    epochs = [s.epochs for s in stages]
    assert epochs == sorted(epochs) and epochs[-1] == max_epochs
    assert all(s.trials >= 1 for s in stages)
    assert len({s.name for s in stages}) == len(stages)


def test_a_third_on_sobol_runs_stopped_early_then_tpe_in_the_survivors_box():
    coarse, fine = default_plan(576, 9)
    assert (coarse.name, coarse.trials, coarse.epochs, coarse.sampler) == (
        "coarse",
        21,
        9,
        "sobol",
    )
    assert (coarse.stop_early, coarse.reduction_factor, coarse.min_epochs) == ("asha", 3, 3)
    assert (fine.name, fine.trials, fine.epochs, fine.sampler) == ("fine", 43, 9, "tpe")
    assert (fine.stop_early, fine.min_epochs, fine.keep, fine.margin) == ("asha", 3, 0.5, 0.5)
    assert fine.promote == 0  # the coarse survivors already ran at full length


@pytest.mark.parametrize(("budget", "max_epochs"), GRID)
def test_runs_are_stopped_early_wherever_a_run_has_a_rung(budget, max_epochs):
    for s in default_plan(budget, max_epochs):
        if max_epochs == 1:
            assert s.stop_early is None  # a 1-epoch run has nothing to stop
        else:
            assert s.stop_early == "asha" and 1 <= s.min_epochs < s.epochs
        assert s.promote == 0


def test_the_fine_box_spans_the_best_half_of_the_coarse_runs_that_went_the_distance():
    from hpsearch.core.records import TrialRecord
    from hpsearch.engine.stages import plan_stage

    spec = parse_spec(SPEC)
    lrs = [10.0 ** (-5 + i / 4) for i in range(20)]
    # ten runs went the distance (values best near 1e-2); ten stopped runs sit at 1e-5..1e-3
    # with values that would win if a stopped run's value counted
    records = [
        TrialRecord(i, "coarse", "COMPLETE", {"lr": lr}, abs(math.log10(lr) + 2))
        if i >= 10
        else TrialRecord(i, "coarse", "PRUNED", {"lr": lr}, -1.0)
        for i, lr in enumerate(lrs)
    ]
    plan = plan_stage(spec, 1, spec.space, records)
    kept = sorted((r for r in records if r.state == "COMPLETE"), key=lambda r: r.value)[:5]
    span = [math.log10(r.params["lr"]) for r in kept]
    box = plan.region.space["lr"]
    lo, hi = math.log10(box.low), math.log10(box.high)
    pad = 0.5 * (max(span) - min(span))
    assert lo == pytest.approx(min(span) - pad) and hi == pytest.approx(max(span) + pad)
    assert plan.points == [{}] * spec.stages[1].trials  # TPE's slots
    # the box is TPE's prior, not a wall: it samples over the hull of the space and the box
    assert plan.space == spec.space


def test_a_small_budget_is_one_stage_of_full_runs():
    assert [(s.name, s.trials, s.epochs) for s in default_plan(9, 9)] == [("full", 1, 9)]
    assert [(s.name, s.trials) for s in default_plan(45, 9)] == [("full", 5)]
    assert [(s.trials, s.epochs) for s in default_plan(10, 1)] == [(3, 1), (7, 1)]
    assert [(s.name, s.trials) for s in default_plan(8, 1)] == [("full", 8)]


def test_the_plan_is_deterministic():
    assert default_plan(1000, 27) == default_plan(1000, 27)


def test_a_budget_smaller_than_one_full_run_is_refused():
    with pytest.raises(ValueError, match="budget >= max_epochs"):
        default_plan(8, 9)


def test_promotion_works_with_any_sampler_and_keeps_the_budget_exact():
    from hpsearch.core.records import TrialRecord
    from hpsearch.engine.stages import plan_stage

    spec = parse_spec(
        {
            "name": "s",
            "space": {"lr": {"low": 1e-5, "high": 1.0, "log": True}},
            "stage": [
                {"name": "a", "trials": 20},
                {"name": "b", "trials": 6, "promote": 2, "sampler": "sobol"},
            ],
        }
    )
    records = [
        TrialRecord(i, "a", "COMPLETE", {"lr": 10.0 ** -(i % 5)}, float(i)) for i in range(20)
    ]
    plan = plan_stage(spec, 1, spec.space, records)
    assert len(plan.points) == 6
    assert plan.points[:2] == [{"lr": 1.0}, {"lr": 0.1}]
    assert all(p for p in plan.points)  # sobol slots carry their params


SPEC = {
    "name": "s",
    "space": {"lr": {"low": 1e-5, "high": 1.0, "log": True}},
    "budget": 270,
    "max_epochs": 9,
}


def test_a_budget_spec_stores_its_planned_stages_and_round_trips():
    spec = parse_spec(SPEC)
    assert spec.stages == default_plan(270, 9) and spec.total_epochs <= 270
    stored = spec.to_dict()
    assert stored["budget"] == 270 and stored["max_epochs"] == 9
    assert [s["trials"] for s in stored["stage"]] == [s.trials for s in spec.stages]
    again = spec_from_dict(stored)
    assert again.to_dict() == stored and again.stages == spec.stages


def test_a_changed_budget_is_a_spec_difference():
    a = parse_spec(SPEC).to_dict()
    b = parse_spec({**SPEC, "budget": 300}).to_dict()
    assert "budget 270 -> 300" in [c.line for c in classify(a, b, set())]


def test_stored_stages_win_over_a_replanned_budget():
    """A later hpsearch may plan differently; a stored search keeps the stages it ran."""
    stored = parse_spec(SPEC).to_dict()
    stored["stage"][0]["trials"] += 1
    assert spec_from_dict(stored).stages[0].trials == stored["stage"][0]["trials"]


def test_dry_run_prints_the_plan_built_from_the_budget(tmp_path):
    from click.testing import CliRunner

    from hpsearch.cli import main

    path = tmp_path / "s.toml"
    path.write_text(
        'name = "s"\nobjective = "stubs:quadratic"\nmetric = "loss"\n'
        "budget = 270\nmax_epochs = 9\n[space.lr]\nlow = 1e-5\nhigh = 1.0\nlog = true\n"
    )
    result = CliRunner().invoke(main, ["launch", "--dry-run", str(path)])
    assert result.exit_code == 0, result.output
    assert "plan built from budget = 270 epochs, max_epochs = 9" in result.output
    assert why(default_plan(270, 9), 270, 9) in result.output
    assert "coarse: 10 trials x 9 epoch(s), sobol" in result.output
    assert (
        f"fine: 20 trials x 9 epoch(s), tpe, seeded with every earlier run, {prior.box_role()}: "
        "the box of the best 50% of the coarse runs that went the distance (margin 0.5)"
    ) in result.output
    # both stages stop runs from a third of their epochs on
    assert result.output.count("a run goes on past epoch 3 only in the top 1/3 there") == 2


#: The grid the plan must hold on (issue 19): budgets from 50 to 20,000 epochs, runs of 8,
#: 27 and 100 epochs; docs/plans.md tabulates it (benchmarks/plan_table.py).
EDGE_BUDGETS = sorted(
    {50, 64, 99, 100, 101, 150, 191, 192, 200, 240, 300, 500, 728, 729, 1000, 2000}
    | {3000, 5000, 8399, 8400, 10_000, 15_000, 20_000}
)
EDGE_EPOCHS = [8, 27, 100]


@pytest.mark.parametrize("max_epochs", EDGE_EPOCHS)
def test_the_plan_holds_at_every_budget(max_epochs):
    from hpsearch.core import plan

    split = plan.least_budget(max_epochs)
    for budget in EDGE_BUDGETS:
        if budget < max_epochs:  # not one full run: the spec refuses it, naming the fix
            with pytest.raises(ValueError, match="budget >= max_epochs"):
                default_plan(budget, max_epochs)
            continue
        stages = default_plan(budget, max_epochs)
        text = why(stages, budget, max_epochs)
        assert 0 <= budget - total(stages) < max_epochs
        epochs = [s.epochs for s in stages]
        assert epochs == sorted(epochs) and epochs[-1] == max_epochs  # no fine stage shorter
        assert all(s.trials >= 1 for s in stages)
        # one stage exactly where the budget is below the split, and the text says so
        assert (len(stages) == 1) == (budget < split)
        assert text.startswith("why: one stage, as") == (len(stages) == 1)
        if len(stages) == 1:
            assert f"{budget} epochs is too small" in text and f"budget = {split}" in text
        else:
            coarse, fine = stages
            assert plan.asha_survivors(coarse)[1] >= plan.MIN_SURVIVORS
            assert fine.trials >= coarse.trials and fine.min_epochs >= coarse.min_epochs
        # the text is of these stages: their budgets, rungs and lengths
        for s in stages:
            assert f"{s.budget} epochs" in text or len(stages) == 1
            marks = plan.rungs(s)
            if marks:
                assert f"epoch {', '.join(map(str, marks))}" in text or (
                    s.name == "fine" and f"before epoch {marks[0]}" in text
                )


def test_coarse_to_fine_from_a_budget_on_and_at_every_larger_one():
    from hpsearch.core import plan

    for max_epochs in (1, 2, 8, 9, 27, 100):
        split = plan.least_budget(max_epochs)
        assert len(default_plan(split, max_epochs)) == 2
        assert len(default_plan(split - max_epochs, max_epochs)) == 1 or split == max_epochs
        assert all(
            len(default_plan(b, max_epochs)) == 2
            for b in range(split, split + 60 * max_epochs, max_epochs)
        )


def test_asha_survivors_follow_the_rungs():
    from hpsearch.core import plan

    coarse = default_plan(576, 9)[0]  # 21 runs' worth, one rung at 3 of 9
    started, full = plan.asha_survivors(coarse)
    assert plan.rungs(coarse) == [3]
    # a run costs 3 + 6/3 epochs on average; 1 in 3 goes the distance
    assert started == pytest.approx(189 / (3 + 6 / 3))
    assert full == pytest.approx(started / 3)
    one = default_plan(3000, 100)[0]  # one stage: ASHA from epoch 1 (rungs 1, 3, 9, 27, 81)
    assert plan.rungs(one) == [1, 3, 9, 27, 81]


def test_the_coarse_stage_stops_runs_from_a_third_of_a_run_and_one_stage_from_epoch_1():
    from hpsearch.core import plan

    for max_epochs in (2, 3, 8, 9, 27, 100):
        split = plan.least_budget(max_epochs)
        coarse = default_plan(split, max_epochs)[0]
        assert coarse.name == "coarse"
        assert coarse.min_epochs == max(1, round(max_epochs * plan.COARSE_MIN_SHARE))
        assert coarse.min_epochs < max_epochs
        if split > max_epochs:
            (one,) = default_plan(split - max_epochs, max_epochs)
            assert one.name == "full" and one.min_epochs == 1
