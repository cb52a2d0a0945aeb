"""When the runs are enough to say something: the thresholds a report's advice obeys.

A report says "this parameter matters", "widen lr below 1e-05" and "the promising region
is here" only when the runs support it; otherwise it says the evidence is thin. Three
rules, all pure and seeded:

* **A parameter matters** when its effect on the ranked values stands out from noise: the
  correlation ratio (eta squared) of the values' ranks grouped by the parameter (by
  quantile bins for a number, by choice for a categorical) against the same statistic
  over ``PERMUTATIONS`` random shufflings of the values; it matters at p <= ``ALPHA``
  (a one-sided permutation test: on pure noise it says "matters" 5% of the time per
  parameter, which ``tests/test_evidence.py`` checks). Fewer than ``MIN_RUNS`` usable
  runs rank nothing.
* **An edge is pressed** only when at least ``EDGE_RUNS`` of the runs that narrowed the
  region lie in the outer ``regions.EDGE_TOL`` of the range at that edge: one lucky run at
  the bound is not a reason to widen it.
* **A region is stated** only when it was spanned by more than ``REGION_RUNS`` runs (a
  handful of runs spans a box, but says little about where the optimum lies).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from hpsearch.core.records import TrialRecord
from hpsearch.core.space import SearchSpace

ALPHA = 0.05
PERMUTATIONS = 199
#: Fewest usable runs a parameter's effect is tested on.
MIN_RUNS = 8
#: Fewest kept runs at a bound for "widen this edge".
EDGE_RUNS = 3
#: A region spanned by this many runs or fewer is "thin".
REGION_RUNS = 5


@dataclass(frozen=True)
class Effect:
    """One parameter's effect: eta squared of the values' ranks by its groups, and the
    permutation p-value of that."""

    name: str
    eta2: float
    p: float

    @property
    def matters(self) -> bool:
        return self.p <= ALPHA


def _groups(p: Any, values: list[Any]) -> np.ndarray:
    if not p.numeric:
        index = {repr(c): i for i, c in enumerate(p.choices)}
        return np.array([index.get(repr(v), -1) for v in values])
    x = np.array([p.to_scale(v) for v in values], dtype=float)
    bins = 3 if len(x) < 20 else 4 if len(x) < 40 else 5
    edges = np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1])
    return np.searchsorted(edges, x, side="right")


def _eta2(groups: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Correlation ratio of each row of ``y`` (shape (k, n)) by ``groups``."""
    total = ((y - y.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    between = np.zeros(len(y))
    for g in np.unique(groups):
        m = groups == g
        between += m.sum() * (y[:, m].mean(axis=1) - y.mean(axis=1)) ** 2
    return np.where(total > 0, between / np.where(total > 0, total, 1.0), 0.0)


def effects(
    records: list[TrialRecord], space: SearchSpace, direction: str, *, seed: int = 0
) -> dict[str, Effect] | None:
    """Each searched parameter's :class:`Effect` over the stage's usable runs (complete
    with a finite value; diverged runs rank last), or None with fewer than ``MIN_RUNS``."""
    rows = [
        r
        for r in records
        if r.finished
        and r.state == "COMPLETE"
        and r.value is not None
        and math.isfinite(r.value)
        and all(p.name in r.params for p in space)
    ]
    if len(rows) < MIN_RUNS:
        return None
    sign = 1.0 if direction == "minimize" else -1.0
    worst = max(sign * float(r.value) for r in rows)  # type: ignore[arg-type]
    y = np.array([worst + 1.0 if r.diverged else sign * float(r.value) for r in rows])  # type: ignore[arg-type]
    ranks = np.argsort(np.argsort(y, kind="stable"), kind="stable").astype(float)
    rng = np.random.default_rng(seed)
    shuffled = np.array([rng.permutation(ranks) for _ in range(PERMUTATIONS)])
    out = {}
    for p in space:
        groups = _groups(p, [r.params[p.name] for r in rows])
        if len(np.unique(groups)) < 2:
            out[p.name] = Effect(p.name, 0.0, 1.0)
            continue
        obs = float(_eta2(groups, ranks[None, :])[0])
        null = _eta2(groups, shuffled)
        pval = (1 + int((null >= obs - 1e-12).sum())) / (1 + PERMUTATIONS)
        out[p.name] = Effect(p.name, obs, pval)
    return out


def thin_region(kept: int) -> bool:
    """A region spanned by ``REGION_RUNS`` runs or fewer says little."""
    return kept <= REGION_RUNS
