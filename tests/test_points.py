"""Point sets: log-uniform where asked, seeded, grids exact and even."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hpsearch.core.points import (
    GridError,
    derive_seed,
    distinct_values,
    grid_points,
    grid_shape,
    make_points,
    promoted_points,
)
from hpsearch.core.records import TrialRecord
from hpsearch.core.space import CategoricalParam, FloatParam, IntParam, SearchSpace

LR = FloatParam("lr", 1e-5, 1.0, log=True)
DROP = FloatParam("dropout", 0.0, 0.5)
DEPTH = IntParam("depth", 1, 4)
WIDTH = IntParam("width", 8, 64, log=True)
ACT = CategoricalParam("act", ("relu", "tanh", "elu"))
SPACE = SearchSpace((LR, DROP, DEPTH, WIDTH, ACT))


@pytest.mark.parametrize("sampler", ["random", "sobol", "grid"])
def test_points_are_a_function_of_the_seed(sampler):
    space = SearchSpace((LR, DROP))
    assert make_points(sampler, space, 16, 3) == make_points(sampler, space, 16, 3)
    if sampler != "grid":
        assert make_points(sampler, space, 16, 3) != make_points(sampler, space, 16, 4)


@pytest.mark.parametrize("sampler", ["random", "sobol"])
def test_log_params_are_uniform_in_log_space(sampler):
    pts = make_points(sampler, SearchSpace((LR,)), 4000, 0)
    decades = np.floor(np.log10([p["lr"] for p in pts]))
    counts = np.bincount((decades + 5).astype(int), minlength=5)[:5]
    # five decades, ~800 each; linear sampling would put ~90% in the top decade
    assert counts.min() > 650 and counts.max() < 950, counts


def test_values_stay_inside_their_ranges_and_types():
    for p in make_points("random", SPACE, 500, 1) + make_points("sobol", SPACE, 128, 1):
        assert 1e-5 <= p["lr"] <= 1.0
        assert 0.0 <= p["dropout"] <= 0.5
        assert isinstance(p["depth"], int) and 1 <= p["depth"] <= 4
        assert isinstance(p["width"], int) and 8 <= p["width"] <= 64
        assert p["act"] in ACT.choices


def test_int_end_values_are_as_likely_as_inner_ones():
    pts = make_points("random", SearchSpace((DEPTH,)), 4000, 2)
    counts = np.bincount([p["depth"] for p in pts])[1:]
    assert counts.min() > 900, counts


def test_tpe_slots_are_empty_for_the_sampler_to_fill():
    assert make_points("tpe", SPACE, 3, 0) == [{}, {}, {}]


@pytest.mark.parametrize(
    ("space", "n", "shape"),
    [
        (SearchSpace((LR,)), 7, (7,)),
        (SearchSpace((LR, DROP)), 40, (8, 5)),
        (SearchSpace((LR, DROP)), 36, (6, 6)),
        (SearchSpace((LR, ACT)), 24, (8, 3)),
        (SearchSpace((LR, DROP, DEPTH)), 64, (4, 4, 4)),
    ],
)
def test_grid_shape_is_exact_and_as_even_as_possible(space, n, shape):
    assert grid_shape(space, n) == shape


def test_grid_respects_int_ranges():
    # depth has only 4 values: 5 x 4 beats the more even-looking 4 x 5 split the other way
    assert grid_shape(SearchSpace((DEPTH, LR)), 20) == (4, 5)


@pytest.mark.parametrize(("n", "match"), [(7, "use trials = 6 or 8"), (3, "use trials = 6,")])
def test_impossible_grids_name_the_nearest_counts(n, match):
    space = SearchSpace((LR, ACT)) if n == 3 else SearchSpace((LR, DROP))
    with pytest.raises(GridError, match=match):
        grid_shape(space, n)


def test_grid_is_log_spaced_for_log_params_and_covers_every_point_once():
    space = SearchSpace((LR, ACT))
    pts = grid_points(space, 15, seed=0)
    assert len(pts) == 15
    assert len({(p["lr"], p["act"]) for p in pts}) == 15
    lrs = sorted({p["lr"] for p in pts})
    assert [round(math.log10(x), 6) for x in lrs] == [-5.0, -3.75, -2.5, -1.25, 0.0]


def test_grid_that_cannot_be_exact_is_topped_up_to_the_budget():
    pts = grid_points(SearchSpace((LR, DROP)), 7, seed=0)  # 7 is prime: 6-point grid + 1
    assert len(pts) == 7


def test_grid_tries_far_fewer_distinct_values_per_parameter_than_random():
    space = SearchSpace((LR, DROP))
    grid, rand = grid_points(space, 36, 0), make_points("random", space, 36, 0)
    assert distinct_values(grid, LR) == 6
    assert distinct_values(rand, LR) == 36


def test_derived_seeds_differ_between_stages_and_slots():
    seeds = {derive_seed(0, stage, slot) for stage in range(3) for slot in range(100)}
    assert len(seeds) == 300
    assert derive_seed(1, 2) == derive_seed(1, 2)


def rec(number, value, state="COMPLETE", diverged=False, **params):
    attrs = {"diverged": True} if diverged else {}
    return TrialRecord(number, "coarse", state, params, value, attrs)


PROMOTE_SPACE = SearchSpace((LR, DEPTH, ACT))
RECORDS = [
    rec(0, 0.5, lr=1e-3, depth=2, act="relu"),
    rec(1, 0.1, lr=1e-2, depth=3, act="tanh"),
    rec(2, None, state="FAIL", lr=1e-4, depth=1, act="elu"),
    rec(3, 0.01, diverged=True, lr=0.5, depth=4, act="elu"),
    rec(4, 0.3, lr=1e-4, depth=1, act="relu"),
    rec(5, 0.1, lr=2e-2, depth=2, act="relu"),
]


def test_promoted_points_are_the_best_usable_trials_best_first():
    pts = promoted_points(PROMOTE_SPACE, RECORDS, 3, "minimize")
    # ties keep trial-number order; failed and diverged trials are never promoted
    assert pts == [
        {"lr": 1e-2, "depth": 3, "act": "tanh"},
        {"lr": 2e-2, "depth": 2, "act": "relu"},
        {"lr": 1e-4, "depth": 1, "act": "relu"},
    ]
    assert promoted_points(PROMOTE_SPACE, RECORDS, 3, "maximize")[0]["lr"] == 1e-3
    assert promoted_points(PROMOTE_SPACE, RECORDS, 0, "minimize") == []


def test_fewer_points_when_fewer_trials_gave_a_value():
    assert len(promoted_points(PROMOTE_SPACE, RECORDS, 10, "minimize")) == 4
    assert promoted_points(PROMOTE_SPACE, RECORDS[2:4], 2, "minimize") == []


def test_promoted_points_are_put_inside_a_narrowed_space():
    narrowed = SearchSpace(
        (
            FloatParam("lr", 5e-3, 1.5e-2, log=True),
            IntParam("depth", 2, 3),
            CategoricalParam("act", ("tanh",)),
        )
    )
    pts = promoted_points(narrowed, RECORDS, 3, "minimize")
    assert pts == [
        {"lr": 1e-2, "depth": 3, "act": "tanh"},  # inside: unchanged
        {"lr": 1.5e-2, "depth": 2, "act": "tanh"},  # clipped; a dropped choice -> the best's
        {"lr": 5e-3, "depth": 2, "act": "tanh"},
    ]


def test_promoted_points_are_a_function_of_the_records():
    shuffled = [RECORDS[i] for i in (5, 3, 0, 4, 1, 2)]
    assert promoted_points(PROMOTE_SPACE, shuffled, 3, "minimize") == promoted_points(
        PROMOTE_SPACE, RECORDS, 3, "minimize"
    )
