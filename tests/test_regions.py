"""Narrowing on synthetic records: span in each parameter's scale, margins, edges, ties."""

from __future__ import annotations

import math

import pytest

from hpsearch.core.records import TrialRecord, rank
from hpsearch.core.regions import Region, narrow, select_top
from hpsearch.core.space import CategoricalParam, FloatParam, IntParam, SearchSpace

LR = FloatParam("lr", 1e-5, 1.0, log=True)
DROP = FloatParam("dropout", 0.0, 0.8, min=0.0, max=0.95)
DEPTH = IntParam("depth", 1, 6)
ACT = CategoricalParam("act", ("relu", "tanh", "elu"))
SPACE = SearchSpace((LR, DROP, DEPTH, ACT))


def rec(n, value, state="COMPLETE", diverged=False, **params):
    base = {"lr": 1e-3, "dropout": 0.4, "depth": 3, "act": "relu"}
    return TrialRecord(
        n,
        "coarse",
        state,
        {**base, **params},
        value,
        attrs={"diverged": diverged} if diverged else {},
    )


def grid_over_lr(best_log_lr: float, n: int = 41) -> list[TrialRecord]:
    """Trials evenly spread over lr's 5 decades; loss grows with distance to best_log_lr."""
    out = []
    for i in range(n):
        x = -5 + 5 * i / (n - 1)
        out.append(rec(i, (x - best_log_lr) ** 2, lr=10**x, dropout=0.8 * ((i * 7) % n) / n))
    return out


def test_numeric_span_is_taken_in_log_scale_and_narrower_than_before():
    region = narrow(SPACE, grid_over_lr(-2.5), keep=0.2, margin=0.25, direction="minimize")
    lr = region.space["lr"]
    lo, hi = math.log10(lr.low), math.log10(lr.high)
    assert lo < -2.5 < hi
    assert hi - lo < 2.0  # from 5 decades to under 2
    assert region.edges() == {}
    assert region.best_value == pytest.approx(0.0)


def test_optimum_at_an_edge_extends_the_range_past_that_edge():
    region = narrow(SPACE, grid_over_lr(-6.0), keep=0.2, margin=0.25, direction="minimize")
    lr = region.space["lr"]
    assert lr.low < 1e-5 and lr.low > 0
    assert region.edges() == {"lr": "low"}
    assert any("press the low bound of lr" in w for w in region.warnings)


def test_optimum_at_the_high_edge_of_a_linear_param_respects_its_hard_limit():
    recs = [rec(i, -i, dropout=0.8 * i / 20) for i in range(21)]  # best at dropout = 0.8
    region = narrow(SPACE, recs, keep=0.2, margin=0.25, direction="minimize")
    assert region.space["dropout"].high == pytest.approx(0.95)
    assert region.edges()["dropout"] == "high"


def test_unimportant_parameter_with_best_value_at_an_edge_is_not_called_pressed():
    # dropout does not matter; the best trial happens to have the top dropout value
    recs = grid_over_lr(-2.5)
    best = min(recs, key=lambda r: r.value)
    recs[best.number] = rec(best.number, best.value, lr=best.params["lr"], dropout=0.8)
    region = narrow(SPACE, recs, keep=0.2, margin=0.25, direction="minimize")
    assert "dropout" not in region.edges()


def test_all_equal_values_keep_a_usable_width():
    recs = [rec(i, 1.0, lr=1e-3) for i in range(10)]
    region = narrow(SPACE, recs, keep=0.3, margin=0.25, direction="minimize")
    lr = region.space["lr"]
    assert math.log10(lr.high) - math.log10(lr.low) == pytest.approx(1.0)  # 20% of 5 decades
    assert lr.low < 1e-3 < lr.high


def test_one_trial_gives_a_region_around_it():
    region = narrow(
        SPACE, [rec(0, 0.5, lr=1e-2, depth=2)], keep=0.25, margin=0.25, direction="minimize"
    )
    assert region.space["lr"].low < 1e-2 < region.space["lr"].high
    depth = region.space["depth"]
    assert depth.low <= 2 <= depth.high and depth.low < depth.high
    assert region.kept == (0,)


def test_ties_at_the_cutoff_are_all_kept():
    recs = [rec(i, 1.0 if i < 6 else 2.0, lr=10 ** (-1 - i / 3)) for i in range(10)]
    top = select_top(recs, keep=0.2, direction="minimize")
    assert [r.number for r in top] == [0, 1, 2, 3, 4, 5]


def test_diverged_and_failed_trials_rank_last_and_are_never_kept():
    recs = [
        rec(0, 0.0, diverged=True, lr=0.9),
        rec(1, None, state="FAIL", lr=0.9),
        rec(2, 5.0, lr=1e-3),
        rec(3, 4.0, lr=2e-3),
    ]
    assert [r.number for r in rank(recs, "minimize")] == [3, 2, 0, 1]
    top = select_top(recs, keep=0.5, direction="minimize")
    assert [r.number for r in top] == [3, 2]


def test_maximize_keeps_the_largest_values():
    recs = [rec(i, float(i), lr=10 ** (-5 + i / 4)) for i in range(20)]
    top = select_top(recs, keep=0.1, direction="maximize")
    assert [r.number for r in top] == [19, 18]


def test_categoricals_keep_the_choices_seen_among_the_top():
    recs = [
        rec(i, float(i), act=("tanh", "elu", "relu")[i % 3] if i > 3 else "elu") for i in range(20)
    ]
    region = narrow(SPACE, recs, keep=0.2, margin=0.25, direction="minimize")
    assert region.space["act"].choices == ("elu",)


def test_no_usable_trial_keeps_the_same_space_and_warns():
    recs = [rec(i, None, state="FAIL") for i in range(5)]
    region = narrow(SPACE, recs, keep=0.2, margin=0.25, direction="minimize")
    assert region.space == SPACE
    assert "none of the 5 finished trials" in region.warnings[0]


def test_superseded_trials_do_not_count():
    recs = [rec(0, 1.0), TrialRecord(1, "coarse", "FAIL", {"lr": 0.5}, superseded=True)]
    assert [r.number for r in rank(recs, "minimize")] == [0]


def test_int_ranges_stay_integer_on_their_step_and_log_ranges_positive():
    space = SearchSpace((IntParam("width", 8, 64, log=True), IntParam("units", 10, 100, step=10)))
    recs = [
        TrialRecord(i, "c", "COMPLETE", {"width": 8 + i, "units": 10 + 10 * (i % 2)}, float(i))
        for i in range(10)
    ]
    region = narrow(space, recs, keep=0.2, margin=0.25, direction="minimize")
    width, units = region.space["width"], region.space["units"]
    assert isinstance(width.low, int) and width.low >= 1
    assert (units.low - 10) % 10 == 0 and (units.high - 10) % 10 == 0 and units.low < units.high


def test_region_round_trips_through_json():
    import json

    region = narrow(SPACE, grid_over_lr(-6.0), keep=0.2, margin=0.25, direction="minimize")
    again = Region.from_dict(json.loads(json.dumps(region.to_dict())))
    assert again == region
