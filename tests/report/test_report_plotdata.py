"""What each figure shows, computed without plotly: subsampling, slices, boxes, progress."""

from __future__ import annotations

import math

from report_helpers import rec

from hpsearch.core.records import rank
from hpsearch.core.regions import narrow
from hpsearch.core.space import CategoricalParam, FloatParam, SearchSpace
from hpsearch.core.spec import StageSpec, StudySpec
from hpsearch.report.plotdata import (
    curve_data,
    epochs_spent,
    pair_data,
    progress,
    slice_data,
    subsample,
    value_window,
)
from hpsearch.report.search import SearchView, StageView

SPACE = SearchSpace(
    (
        FloatParam("lr", 1e-5, 1.0, log=True),
        FloatParam("wd", 1e-6, 1e-2, log=True),
        CategoricalParam("act", ("relu", "tanh")),
    )
)


def view_of(coarse, fine=()):
    spec = StudySpec(
        "s",
        "stubs:quadratic",
        "loss",
        "minimize",
        0,
        SPACE,
        (StageSpec("coarse", len(coarse), 1), StageSpec("fine", max(1, len(fine)), 3)),
    )
    region = narrow(SPACE, list(coarse), keep=0.25, margin=0.25, direction="minimize")
    stages = [
        StageView(spec.stages[0], 0, SPACE, None, list(coarse), region),
        StageView(spec.stages[1], 1, region.space if fine else None, region, list(fine), None),
    ]
    return SearchView(spec, stages)


def sweep(n, stage="coarse"):
    return [
        rec(
            i,
            (math.log10(10 ** (-5 + 5 * i / n)) + 2.5) ** 2,
            lr=10 ** (-5 + 5 * i / n),
            stage=stage,
        )
        for i in range(n)
    ]


def test_subsample_keeps_the_best_and_is_deterministic():
    records = sweep(5000)
    shown = subsample(records, "minimize", limit=500)
    assert len(shown) == 500
    assert shown == subsample(records, "minimize", limit=500)
    best50 = {r.number for r in rank(records, "minimize")[:50]}
    assert best50 <= {r.number for r in shown}
    assert [r.number for r in shown] == sorted(r.number for r in shown)  # order kept
    assert subsample(records[:100], "minimize", limit=500) == records[:100]


def test_value_window_cuts_far_outliers_at_the_bad_end_only():
    values = [0.1 * i for i in range(1, 21)] + [35.0]
    lo, hi = value_window(values, "minimize")
    assert lo < 0.1 and 2.0 < hi < 35.0
    assert value_window([0.1 * i for i in range(1, 21)], "minimize") is None
    lo, hi = value_window([-v for v in values], "maximize")
    assert lo > -35.0 and hi > -0.1


def test_slice_data_per_param_with_log_scale_and_the_promising_region():
    view = view_of(sweep(40))
    lr, wd, act = slice_data(view, sweep(40), view.stages[0].handed_on)
    assert lr.log and not lr.categorical and len(lr.series) == 1
    assert len(lr.series[0].x) == 40
    assert lr.region[0] < 10**-2.5 < lr.region[1]
    assert act.categorical and act.region is None and act.kept == ["relu"]


def test_pair_data_draws_each_stage_box_and_the_region():
    coarse, fine = sweep(40), sweep(6, stage="fine")
    view = view_of(coarse, fine)
    d = pair_data(view, ["lr", "wd"], coarse + fine, view.stages[0].handed_on)
    assert (d.x, d.y, d.x_log, d.y_log) == ("lr", "wd", True, True)
    assert [b.label for b in d.boxes] == ["stage coarse", "stage fine", "promising region"]
    assert d.boxes[0].x == (1e-5, 1.0)
    assert d.boxes[1].x == d.boxes[2].x  # fine searched what coarse handed on
    assert [s.stage for s in d.series] == ["coarse", "fine"]
    assert pair_data(view, ["lr"], coarse, None) is None


def test_progress_steps_at_each_improvement_against_epochs_spent():
    records = [
        rec(0, 3.0, epochs=1),
        rec(1, 5.0, epochs=1),
        rec(2, 1.0, epochs=1, epochs_run=1),
        rec(3, 2.3, epochs=2, diverged=True, epochs_run=1),  # stopped early: 1 epoch spent
        rec(0, 0.5, epochs=3, stage="fine"),
    ]
    p = progress(records, "minimize", "x")
    assert p.epochs == [1, 3, 7, 7] and p.best == [3.0, 1.0, 0.5, 0.5]
    assert p.total_epochs == 7
    assert p.stage_starts == [(0.0, "coarse"), (4.0, "fine")]
    assert epochs_spent(rec(9, None, state="FAIL", curve=[1.0, 0.9])) == 2


def test_curves_come_from_recorded_curves_else_reported_values():
    recorded = rec(0, 0.2, curve_train_loss=[1.0, 0.5], curve_val_loss=[1.1, 0.6])
    plain = rec(1, 0.9, curve=[1.2, 0.9])
    view = view_of([recorded, plain])
    best, worst = curve_data(view)
    assert best.role == "best" and set(best.curves) == {"train loss", "val loss"}
    assert worst.role == "worst" and worst.curves == {"reported": [1.2, 0.9]}
