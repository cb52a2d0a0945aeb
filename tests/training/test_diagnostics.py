"""Curve diagnostics on hand-made curves: pure Python, no torch."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from hpsearch.training import diagnostics as d

CHANCE = math.log(10)

HEALTHY = [2.3 * 0.9**i for i in range(40)]  # falls from the first step
FLAT = [2.3, 2.31, 2.29, 2.3, 2.3] * 8  # chance level throughout
FLAT_THEN_DROP = [2.3] * 20 + [2.3 * 0.8**i for i in range(20)]  # plateau, then learns


def test_explosion_limit_uses_the_larger_of_start_and_chance() -> None:
    assert d.explosion_limit(1.0, 10) == pytest.approx(3 * CHANCE)
    assert d.explosion_limit(10.0, 10) == pytest.approx(30.0)
    assert d.explosion_limit(math.nan, 10) == pytest.approx(3 * CHANCE)


@pytest.mark.parametrize(
    ("losses", "index", "kind"),
    [
        ([2.3, 2.2, math.nan, 1.0], 2, "nan"),
        ([2.3, math.inf], 1, "inf"),
        ([2.3, 2.3] + [100.0] * 10, 9, "exploded"),  # first full window: 8 of 10 high
        ([2.3] * 12 + [-math.inf], 12, "inf"),
    ],
)
def test_find_divergence(losses: list[float], index: int, kind: str) -> None:
    bad = d.find_divergence(losses, limit=3 * CHANCE)
    assert bad is not None
    assert (bad.index, bad.kind) == (index, kind)


SPIKES = [2.3] * 10 + [1e6] * 4 + [2.0] * 20


@pytest.mark.parametrize("losses", [HEALTHY, FLAT, [], SPIKES])
def test_no_divergence_in_healthy_flat_empty_or_short_spikes(losses: list[float]) -> None:
    # Spikes that recover (common with batch norm at a high lr) are not divergence.
    assert d.find_divergence(losses, limit=3 * CHANCE) is None


def test_window_of_one_flags_single_steps() -> None:
    bad = d.find_divergence(SPIKES, limit=3 * CHANCE, window=1)
    assert bad is not None and bad.index == 10


def test_divergence_reasons_read_well() -> None:
    assert d.Divergence(11, math.nan, "nan").describe("train loss") == "train loss nan at step 12"
    exploded = d.Divergence(3, 1234.5, "exploded").describe("train loss", "epoch 2 step 4")
    assert exploded == "train loss exploded to a median of 1234 at epoch 2 step 4"


def test_not_learning() -> None:
    assert d.not_learning(FLAT)
    assert not d.not_learning(HEALTHY)
    assert not d.not_learning([2.3])  # one point shows nothing
    # Starts high (large init), falls to chance and stays there: still not learning.
    high_to_chance = [6.0, 4.0] + [2.3] * 38
    assert not d.not_learning(high_to_chance)
    assert d.not_learning(high_to_chance, chance_loss=CHANCE)


def test_flat_then_drop() -> None:
    assert d.flat_then_drop(FLAT_THEN_DROP)
    assert not d.flat_then_drop(HEALTHY)
    assert not d.flat_then_drop(FLAT)
    assert not d.flat_then_drop([2.3, 1.0])  # too short to tell


def test_overfit_gap() -> None:
    assert d.overfit_gap([0.5, 0.99], [0.5, 0.80]) == pytest.approx(0.19)
    assert d.overfit_gap([], []) == 0.0


def test_curve_flags_on_an_overfitting_run() -> None:
    flags = d.curve_flags(HEALTHY, [0.8, 1.0], [0.8, 0.7], num_classes=10)
    assert flags == {
        "not_learning": False,
        "flat_then_drop": False,
        "overfit_gap": pytest.approx(0.3),
    }


def test_module_does_not_import_torch() -> None:
    code = "import sys, hpsearch.training.diagnostics; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
