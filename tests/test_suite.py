"""The issue-19 benchmark suite: its split, its problems' optima, and its smoke mode."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import problems as pb  # noqa: E402
import suite  # noqa: E402

from hpsearch.core.space import SearchSpace, param_from_dict  # noqa: E402


def test_the_split_is_fixed_disjoint_and_covers_twelve_problems_or_more():
    sets = suite.split()
    tuning, held = sets["tuning"], sets["held-out"]
    assert not set(tuning) & set(held)
    assert len(tuning) + len(held) >= 12
    assert abs(len(tuning) - len(held)) <= 1  # about half and half
    budgets = suite.load_suite()["budget"]
    assert set(budgets) == set(tuning) | set(held)
    known = {**pb.PROBLEMS, **pb.SUITE_PROBLEMS, "digits-mlp": None}
    assert set(budgets) <= set(known)


@pytest.mark.parametrize("name", sorted(pb.SUITE_PROBLEMS))
def test_a_synthetic_problem_has_its_optimum_where_it_says(name):
    p = pb.SUITE_PROBLEMS[name]
    space = SearchSpace([param_from_dict(k, v) for k, v in p.space.items()])
    assert 2 <= len(space) <= 10
    for o in p.optima:
        assert p.true_value(o) == pytest.approx(p.optimum, abs=1e-12)
    rng = np.random.default_rng(0)
    for _ in range(300):
        point = space.from_unit(rng.random(len(space)).tolist())
        assert p.true_value(point) >= p.optimum - 1e-12


class _Report:
    seed = 3

    def __init__(self):
        self.values = []

    def __call__(self, epoch, value):
        self.values.append((epoch, value))


def test_the_diverging_corner_fails_mid_run_as_training_would():
    bad = {**pb.DIVERGE_BEST, "lr": 5.0, "full_epochs": 27}
    report = _Report()
    with pytest.raises(pb.Diverged):
        pb.diverging(bad, 27, report)
    assert 1 <= len(report.values) < 27  # it looked fine for a while first
    corner = {**pb.PLATEAU_BEST, "lr": 0.5, "init_scale": 0.5, "full_epochs": 27}
    assert math.isnan(pb.plateau(corner, 27, _Report()))


def test_short_runs_of_biased_log6_point_away_from_the_optimum():
    short = {**pb.LOG6_BEST, "lr": pb.LOG6_BEST["lr"] * 10}
    assert pb._log6(short, 0.01) < pb._log6(pb.LOG6_BEST, 0.01)
    assert pb._log6(short, 1.0) > pb._log6(pb.LOG6_BEST, 1.0)


def test_a_compacted_trace_reads_the_same_at_every_budget():
    trace = [(9, 3.0), (18, 3.0), (27, 1.5), (36, 1.5), (45, 1.5), (54, 0.25), (63, 0.25)]
    short = suite.compact(trace)
    assert short[-1][0] == 63
    for epochs in range(0, 70):
        assert suite.se.quality_at(short, epochs) == suite.se.quality_at(trace, epochs)


@pytest.mark.skipif(not pb.DIGITS_MLP_DATA.exists(), reason="recording not present")
def test_the_recorded_problem_replays_its_best_configuration():
    p = pb.digits_mlp_problem()
    rec = pb.recorded()
    assert len(rec.params) >= 500 and rec.curves.shape[1] == 27
    best = p.optima[0]
    assert p.true_value(best) == p.optimum
    report = _Report()
    value = pb.digits_mlp({**best, "full_epochs": 27}, 27, report)
    assert value == pytest.approx(p.optimum) and len(report.values) == 27


@pytest.mark.slow
def test_quick_mode_runs_every_contender_on_both_sets(tmp_path):
    pytest.importorskip("dehb", reason="the bench extra: pip install -e '.[bench]'")
    proc = subprocess.run(
        [sys.executable, str(BENCH / "suite.py"), "--quick", "--results", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout
    assert "#### tuning set" in text and "#### held-out set" in text
    for contender in suite.CONTENDERS:
        assert text.count(f"| {contender} | 2 |") == 2, contender
    assert "failed:" not in proc.stderr
