"""The evidence rules and the final region's confidence: pure core, seeded, fast."""

from __future__ import annotations

import math
import random

import numpy as np

from hpsearch.core import confidence as cf
from hpsearch.core.evidence import ALPHA, MIN_RUNS, effects, thin_region
from hpsearch.core.records import TrialRecord
from hpsearch.core.regions import final_region
from hpsearch.core.space import CategoricalParam, FloatParam, IntParam, SearchSpace

SPACE = SearchSpace(
    (
        FloatParam("lr", 1e-4, 1.0, log=True),
        FloatParam("x", 0.0, 1.0),
        IntParam("depth", 1, 8),
        CategoricalParam("opt", ("sgd", "adam", "rmsprop")),
    )
)


def runs(n: int, fn, seed: int = 0, epochs: int = 9) -> list[TrialRecord]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        p = {
            "lr": 10 ** rng.uniform(-4, 0),
            "x": rng.random(),
            "depth": rng.randint(1, 8),
            "opt": rng.choice(["sgd", "adam", "rmsprop"]),
        }
        out.append(TrialRecord(i, "s", "COMPLETE", p, fn(p, rng), epochs=epochs))
    return out


def lr_bowl(p, rng) -> float:
    return (math.log10(p["lr"]) + 2) ** 2 + 0.05 * rng.gauss(0, 1)


def test_noise_rarely_matters():
    """On pure noise a parameter "matters" about ALPHA of the time, not more."""
    hits = total = 0
    for seed in range(40):
        found = effects(runs(30, lambda p, r: r.random(), seed), SPACE, "minimize", seed=seed)
        assert found is not None
        hits += sum(e.matters for e in found.values())
        total += len(found)
    assert hits / total <= 2 * ALPHA


def test_a_strong_effect_matters_and_the_rest_do_not():
    found = effects(runs(40, lr_bowl), SPACE, "minimize")
    assert found is not None
    assert found["lr"].matters
    assert not found["depth"].matters


def test_too_few_runs_is_thin():
    assert effects(runs(MIN_RUNS - 1, lr_bowl), SPACE, "minimize") is None
    assert thin_region(5) and not thin_region(6)


def test_final_region_holds_the_optimum_and_states_a_confidence():
    region = final_region([(SPACE, runs(60, lr_bowl))], direction="minimize")
    assert region is not None and region.thin is None
    lr = region.space["lr"]
    assert lr.low <= 1e-2 <= lr.high
    assert 0.0 < region.confidence <= 1.0
    assert region.inside <= region.runs == 60
    # integer bounds and a set of choices, in their own terms
    assert isinstance(region.space["depth"].low, int)
    assert set(region.space["opt"].choices) <= {"sgd", "adam", "rmsprop"}
    assert "confidence" in region.describe()


def test_final_region_is_deterministic():
    a = final_region([(SPACE, runs(30, lr_bowl))], direction="minimize")
    b = final_region([(SPACE, runs(30, lr_bowl))], direction="minimize")
    assert a == b


def test_thin_runs_state_no_region():
    region = final_region([(SPACE, runs(5, lr_bowl))], direction="minimize")
    assert region is not None and region.confidence is None and not region.sure
    assert "evidence is thin" in region.describe()
    assert region.space == SPACE


def test_only_the_longest_runs_count_as_full_length():
    short = runs(40, lr_bowl, epochs=3)
    longer = runs(6, lr_bowl, seed=1, epochs=9)
    longer = [
        TrialRecord(100 + r.number, "f", r.state, r.params, r.value, epochs=9) for r in longer
    ]
    region = final_region([(SPACE, short), (SPACE, longer)], direction="minimize")
    assert region is not None and region.runs == 6 and region.thin is not None


def test_peel_holds_the_target_share():
    space = SearchSpace((FloatParam("a", 0.0, 1.0), FloatParam("b", 0.0, 1.0)))
    rng = np.random.default_rng(0)
    samples = np.clip(rng.normal(0.3, 0.05, (400, 2)), 0, 1)
    box = cf.peel(space, samples, 0.9, pad=0.0)
    assert box.mass >= 0.9
    assert box.high[0] - box.low[0] < 0.5  # much narrower than the cube


def test_a_wide_region_says_it_is_unsure():
    region = final_region([(SPACE, runs(20, lambda p, r: r.random()))], direction="minimize")
    assert region is not None and not region.sure
    assert "unsure" in region.describe()
