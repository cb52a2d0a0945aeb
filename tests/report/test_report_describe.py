"""Region rows: ranges in each parameter's own scale, against the stage's range."""

from __future__ import annotations

import pytest

from hpsearch.core.regions import ParamRegion, Region
from hpsearch.core.space import CategoricalParam, FloatParam, SearchSpace
from hpsearch.report.describe import position_bar, region_rows


def test_position_bar_marks_the_new_range_inside_the_old():
    assert position_bar(0, 10, 0, 5, width=10) == "[#####.....]"
    assert position_bar(0, 10, 4, 6, width=10) == "[....##....]"


def test_position_bar_shows_a_range_extended_past_an_edge():
    assert position_bar(0, 8, -2, 4, width=10) == "[++####....]"


def test_region_rows_of_log_and_categorical_params():
    before = FloatParam("lr", 1e-5, 1.0, log=True)
    after = FloatParam("lr", 10**-3.4, 10**-2.1, log=True)
    act0, act1 = CategoricalParam("act", ("relu", "tanh")), CategoricalParam("act", ("relu",))
    region = Region(
        SearchSpace((after, act1)),
        (ParamRegion(before, after, None, 2e-3), ParamRegion(act0, act1, None, "relu")),
        kept=(1, 2),
        considered=8,
        best_value=0.1,
    )
    lr, act = region_rows(region)
    assert lr.range == "10^-3.40 .. 10^-2.10" and lr.was == "10^-5.00 .. 10^0.00"
    assert lr.kept == pytest.approx(1.3 / 5)
    assert lr.best == "2.00e-03" and lr.edge is None
    assert act.range == "{relu}" and act.kept == 0.5 and act.bar == ""
