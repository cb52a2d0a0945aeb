"""How sure a promising region is: its best runs left out one at a time."""

from __future__ import annotations

from hpsearch.core.records import TrialRecord
from hpsearch.core.regions import sureness
from hpsearch.core.space import FloatParam, SearchSpace

SPACE = SearchSpace((FloatParam("x", 0.0, 1.0), FloatParam("y", 0.0, 1.0)))


def runs(points: list[tuple[float, float]]) -> list[TrialRecord]:
    """Runs whose value is their rank: the first point is the best."""
    return [
        TrialRecord(i, "s", "COMPLETE", {"x": x, "y": y}, value=float(i), epochs=9)
        for i, (x, y) in enumerate(points)
    ]


def test_best_runs_in_one_cluster_make_a_sure_region():
    near = [(0.5 + 0.01 * i, 0.5 - 0.01 * i) for i in range(12)]
    far = [(0.05 + 0.07 * i, 0.9) for i in range(12)]
    sure = sureness(SPACE, runs(near + far), keep=0.25, margin=0.25, direction="minimize")
    assert sure is not None and (sure.inside, sure.of) == (10, 10)
    assert "10 of the 10 best runs fall inside" in sure.describe()
    assert "not how near the optimum" in sure.describe() and "%" not in sure.describe()


def test_best_runs_scattered_by_noise_make_an_unsure_one():
    scattered = [((0.37 * i) % 1, (0.61 * i) % 1) for i in range(1, 11)]
    rest = [(0.5, 0.02 * i) for i in range(30)]
    sure = sureness(SPACE, runs(scattered + rest), keep=0.05, margin=0.0, direction="minimize")
    assert sure is not None and sure.of == 10 and sure.share <= 0.5


def test_too_few_runs_to_say_and_stopped_runs_do_not_count():
    few = runs([(0.5, 0.5)] * 4)
    stopped = [
        TrialRecord(10 + i, "s", "PRUNED", {"x": 0.1, "y": 0.1}, epochs=9, attrs={"epochs_run": 1})
        for i in range(10)
    ]
    assert sureness(SPACE, few + stopped, keep=0.5, margin=0.25, direction="minimize") is None
