"""The default plan: stages built from a total epoch budget."""

from __future__ import annotations

import itertools
import math

import pytest

from hpsearch.edits import classify
from hpsearch.plan import coarse_epochs, default_plan
from hpsearch.spec import StudySpec, parse_spec

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


def test_a_fifth_on_sobol_coarse_runs_the_rest_on_full_runs_promoted_then_tpe():
    coarse, fine = default_plan(576, 9)
    assert (coarse.name, coarse.trials, coarse.epochs, coarse.sampler) == (
        "coarse",
        117,
        1,
        "sobol",
    )
    assert (fine.name, fine.trials, fine.epochs, fine.sampler, fine.promote) == (
        "fine",
        51,
        9,
        "tpe",
        3,
    )
    assert coarse.trials * coarse.epochs <= 576 / 5 + 9


@pytest.mark.parametrize(("budget", "max_epochs"), GRID)
def test_at_most_half_the_fine_runs_are_promoted(budget, max_epochs):
    stages = default_plan(budget, max_epochs)
    if len(stages) == 1:
        assert stages[0].promote == 0
        return
    coarse, fine = stages
    assert coarse.promote == 0
    assert 1 <= fine.promote <= min(3, (fine.trials + 1) // 2)


def test_the_fine_stage_starts_with_the_best_coarse_runs_at_full_length():
    from hpsearch.records import TrialRecord
    from hpsearch.stages import plan_stage

    spec = parse_spec(SPEC)
    coarse, fine = spec.stages
    lrs = [10 ** (-5 + 5 * i / coarse.trials) for i in range(coarse.trials)]
    # the best coarse runs sit around 1e-2; values rise away from it
    records = [
        TrialRecord(i, "coarse", "COMPLETE", {"lr": lr}, abs(math.log10(lr) + 2))
        for i, lr in enumerate(lrs)
    ]
    plan = plan_stage(spec, 1, spec.space, records)
    best = sorted(records, key=lambda r: r.value)[: fine.promote]
    assert plan.points[: fine.promote] == [r.params for r in best]
    assert plan.points[fine.promote :] == [{}] * (fine.trials - fine.promote)  # TPE's slots
    lo, hi = plan.space["lr"].low, plan.space["lr"].high
    assert all(lo <= p["lr"] <= hi for p in plan.points[: fine.promote])


@pytest.mark.parametrize(("budget", "max_epochs"), GRID)
def test_the_fine_box_comes_from_a_few_best_coarse_runs(budget, max_epochs):
    stages = default_plan(budget, max_epochs)
    if len(stages) == 1:
        return
    coarse, fine = stages
    kept = math.ceil(fine.keep * coarse.trials)
    assert 3 <= kept <= max(3, math.ceil(0.02 * coarse.trials))
    assert 0 < fine.keep <= 1


def test_coarse_runs_are_a_ninth_of_a_full_run():
    assert [coarse_epochs(e) for e in (1, 3, 9, 10, 27, 50)] == [1, 1, 1, 1, 3, 6]
    assert [s.epochs for s in default_plan(1000, 27)] == [3, 27]


def test_a_small_budget_is_one_stage_of_full_runs():
    assert [(s.name, s.trials, s.epochs) for s in default_plan(9, 9)] == [("full", 1, 9)]
    assert [(s.trials, s.epochs) for s in default_plan(10, 1)] == [(10, 1)]


def test_the_plan_is_deterministic():
    assert default_plan(1000, 27) == default_plan(1000, 27)


def test_a_budget_smaller_than_one_full_run_is_refused():
    with pytest.raises(ValueError, match="budget >= max_epochs"):
        default_plan(8, 9)


def test_promotion_works_with_any_sampler_and_keeps_the_budget_exact():
    from hpsearch.records import TrialRecord
    from hpsearch.stages import plan_stage

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
    again = StudySpec.from_dict(stored)
    assert again.to_dict() == stored and again.stages == spec.stages


def test_a_changed_budget_is_a_spec_difference():
    a = parse_spec(SPEC).to_dict()
    b = parse_spec({**SPEC, "budget": 300}).to_dict()
    assert "budget 270 -> 300" in [c.line for c in classify(a, b, set())]


def test_stored_stages_win_over_a_replanned_budget():
    """A later hpsearch may plan differently; a stored search keeps the stages it ran."""
    stored = parse_spec(SPEC).to_dict()
    stored["stage"][0]["trials"] += 1
    assert StudySpec.from_dict(stored).stages[0].trials == stored["stage"][0]["trials"]


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
    assert "coarse: 54 trials x 1 epoch(s), sobol" in result.output
    assert (
        "fine: 24 trials x 9 epoch(s), tpe, in the box of the best 3 of 54 (margin 0.5), "
        "the best 3 promoted first"
    ) in result.output
