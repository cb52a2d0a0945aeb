"""Practitioner warnings on hand-made records and curves: each rule fires, and stays quiet."""

from __future__ import annotations

import pytest
from report_helpers import rec

from hpsearch.core.regions import narrow
from hpsearch.core.space import CategoricalParam, FloatParam, SearchSpace
from hpsearch.report import advice

SPACE = SearchSpace(
    (
        FloatParam("lr", 1e-5, 1.0, log=True),
        FloatParam("wd", 1e-6, 1e-2, log=True),
        CategoricalParam("act", ("relu", "tanh")),
    )
)


def lr_sweep(best_log_lr, n=40):
    """Trials evenly over lr's 5 decades; loss grows with the distance to best_log_lr."""
    return [
        rec(i, (-5 + 5 * i / (n - 1) - best_log_lr) ** 2, lr=10 ** (-5 + 5 * i / (n - 1)))
        for i in range(n)
    ]


def test_best_at_the_low_edge_says_widen_below_the_bound():
    records = lr_sweep(-6.0)
    region = narrow(SPACE, records, keep=0.25, margin=0.25, direction="minimize")
    last = advice.edge_advice("fine", region, last=True)
    assert [a.kind for a in last] == ["edge"]
    assert "widen lr below 1e-05" in last[0].message
    assert "search again" in last[0].message
    earlier = advice.edge_advice("coarse", region, last=False)
    assert "the next stage searches on to" in earlier[0].message


def test_best_in_the_middle_gives_no_edge_warning():
    region = narrow(SPACE, lr_sweep(-2.5), keep=0.25, margin=0.25, direction="minimize")
    assert advice.edge_advice("coarse", region, last=True) == []


def test_nothing_learned_from_the_recorded_flag():
    records = [rec(i, 2.3, not_learning=True) for i in range(9)] + [
        rec(9, 1.0, not_learning=False)
    ]
    a = advice.nothing_learned("coarse", records, "minimize")
    assert a is not None and "9 of 10 trials" in a.message
    records[8] = rec(8, 1.1, not_learning=False)  # two learners in ten: not "nothing"
    assert advice.nothing_learned("coarse", records, "minimize") is None


def test_nothing_learned_from_plain_reported_curves_and_silent_without_curves():
    flat = [rec(i, 1.0, curve=[1.0, 0.99, 0.99]) for i in range(5)]
    a = advice.nothing_learned("s", flat, "minimize")
    assert a is not None and "5 of 5" in a.message
    falling = [rec(i, 0.3, curve=[1.0, 0.6, 0.3]) for i in range(5)]
    assert advice.nothing_learned("s", falling, "minimize") is None
    one_epoch = [rec(i, 1.0, curve=[1.0]) for i in range(5)]  # cannot tell: say nothing
    assert advice.nothing_learned("s", one_epoch, "minimize") is None


def test_all_failed_or_diverged_is_nothing_learned():
    records = [rec(0, None, state="FAIL"), rec(1, 2.3, diverged=True)]
    a = advice.nothing_learned("s", records, "minimize")
    assert a is not None and "all 2 finished trials failed or diverged" in a.message


def test_overfitting_reads_the_gap_of_the_best_trials():
    records = [rec(i, 0.1 * i, overfit_gap=0.25) for i in range(8)]
    a = advice.overfitting("fine", records, "minimize")
    assert a is not None and "0.25" in a.message and "regularize" in a.message
    small = [rec(i, 0.1 * i, train_accuracy=0.95, val_accuracy=0.93) for i in range(8)]
    assert advice.overfitting("fine", small, "minimize") is None
    assert advice.overfitting("fine", [rec(i, i) for i in range(8)], "minimize") is None


def test_flat_then_drop_from_flags_and_from_long_plain_curves():
    flagged = [rec(i, 1.0, flat_then_drop=i < 3) for i in range(10)]
    a = advice.flat_then_drop("coarse", flagged, "minimize")
    assert a is not None and "3 of 10" in a.message and "initialization" in a.message
    plateau = [2.3, 2.3, 2.29, 2.3, 2.3, 1.5, 0.8, 0.5, 0.4, 0.3]
    curves = [rec(i, 0.3, curve=plateau) for i in range(3)] + [
        rec(3 + i, 0.3, curve=[2.3, 1.2, 0.8, 0.6, 0.5, 0.4, 0.35, 0.3, 0.3, 0.3])
        for i in range(3)
    ]
    a = advice.flat_then_drop("fine", curves, "minimize")
    assert a is not None and "3 of 6" in a.message
    short = [rec(i, 0.3, curve=plateau[:4]) for i in range(4)]  # too short to have a shape
    assert advice.flat_then_drop("fine", short, "minimize") is None


def test_init_collapse_from_dead_units_and_shrinking_activations():
    records = [
        rec(i, 1.0, dead_unit_fraction=0.5, act_std_layer=[1.0, 0.1, 0.01]) for i in range(4)
    ]
    kinds = advice.init_collapse("coarse", records)
    assert len(kinds) == 2
    assert "50% of ReLU units" in kinds[0].message
    assert "std 1 -> 0.01" in kinds[1].message
    healthy = [rec(i, 1.0, dead_unit_fraction=0.0, act_std_layer=[0.6, 0.58]) for i in range(4)]
    assert advice.init_collapse("coarse", healthy) == []


def test_divergence_names_the_lr_above_which_runs_diverge():
    records = [rec(i, 1.0 + i, lr=10 ** (-5 + i * 0.5)) for i in range(8)]  # lr up to 10^-1.5
    records += [rec(8 + i, 2.3, diverged=True, lr=10 ** (-0.5 + i * 0.2)) for i in range(4)]
    a = advice.divergence("coarse", records, SPACE)
    assert a is not None
    assert "4 of 12 trials in stage coarse diverged, all with lr >= 0.316" in a.message
    assert "lowering the top of lr's range" in a.message


def test_failures_report_the_most_common_reason():
    records = [rec(0, None, state="FAIL", fail_reason="RuntimeError: out of memory")] * 2
    records += [rec(2, 1.0)]
    a = advice.failures("s", records)
    assert a is not None and "2 of 3 trials" in a.message
    assert "2 x RuntimeError" in a.message and "e.g. RuntimeError: out of memory" in a.message


def test_stage_advice_skips_edges_when_nothing_learned():
    records = [rec(i, 2.3, not_learning=True, lr=10 ** (-5 + i * 0.01)) for i in range(10)]
    region = narrow(SPACE, records, keep=0.25, margin=0.25, direction="minimize")
    found = advice.stage_advice("coarse", records, SPACE, region, direction="minimize", last=True)
    assert [a.kind for a in found] == ["nothing-learned"]


def test_an_edge_warning_prints_the_lines_to_add_to_the_study_file():
    from hpsearch.core.spec import StageSpec

    region = narrow(SPACE, lr_sweep(-6.0), keep=0.25, margin=0.25, direction="minimize")
    new = advice.EdgeFix(StageSpec("fine-2", 10, 5, "tpe"), new=True)
    *_, fix = advice.edge_advice("fine", region, last=True, fix=new)
    assert fix.kind == "edge-fix"
    lines = fix.message.splitlines()
    assert lines[0] == (
        "to search past the edge of lr, add this stage at the end of the study file and "
        "launch again:"
    )
    assert region.space["lr"].high == pytest.approx(2.769e-4, rel=1e-3)
    assert lines[1:] == [
        "    [[stage]]",
        '    name = "fine-2"',
        "    trials = 10",
        "    epochs = 5",
        '    sampler = "tpe"',
        "    [stage.space.lr]",
        # narrowing reached 10^-6.25 already, past the decade below 1e-05: it is kept
        "    low = 5.6e-07",
        "    high = 0.00028",  # narrowing's other end, rounded outwards
    ]
    nxt = advice.EdgeFix(StageSpec("fine", 10, 5), new=False)
    *_, fix = advice.edge_advice("coarse", region, last=False, fix=nxt)
    assert "add these lines to stage fine's [[stage]] table, after its keys," in fix.message
    assert "[[stage]]\n" not in fix.message and "    [stage.space.lr]" in fix.message
    assert advice.edge_advice("coarse", region, last=False)[-1].kind == "edge"  # no fix: none


def test_edge_lines_keep_a_parameters_kind_grid_and_limits():
    from hpsearch.core.regions import ParamRegion
    from hpsearch.core.space import IntParam

    width = IntParam("width", 8, 64, step=8)
    pressed = ParamRegion(width, IntParam("width", 40, 78, step=8), "high", 64)
    assert advice.range_lines(pressed) == ["[stage.space.width]", "low = 40", "high = 80"]
    drop = FloatParam("drop", 0.0, 0.5, max=0.6)
    pressed = ParamRegion(drop, FloatParam("drop", 0.3333, 0.6, max=0.6), "high", 0.5)
    assert advice.range_lines(pressed) == ["[stage.space.drop]", "low = 0.33", "high = 0.6"]
    lr = FloatParam("lr", 1e-3, 1.0, log=True)
    pressed = ParamRegion(lr, FloatParam("lr", 0.03, 2.37, log=True), "high", 0.9)
    assert advice.range_lines(pressed) == ["[stage.space.lr]", "low = 0.03", "high = 10.0"]
