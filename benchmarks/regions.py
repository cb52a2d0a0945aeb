"""Is a promising region true? Measures of a region against a problem's known optima.

For each region a search hands on (stage to stage, and the final one ``hpsearch report``
prints): whether it contains a true optimum, the lowest true regret inside it, and its
volume as a share of the original space, each parameter measured in its own scale
(decades for a log range), so that a box one decade wide on a five-decade learning rate
counts as a fifth of that axis.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from hpsearch.core.space import CategoricalParam, SearchSpace

#: A recommended point "lands near" an optimum when it is within this share of every
#: parameter's original range (in its scale) of it: inside the optimum's basin.
NEAR = 0.05


def inside(space: SearchSpace, point: dict[str, Any]) -> bool:
    for p in space:
        v = point[p.name]
        if isinstance(p, CategoricalParam):
            if v not in p.choices:
                return False
        elif not p.low <= v <= p.high:
            return False
    return True


def volume_share(region: SearchSpace, original: SearchSpace) -> float:
    """The region's volume over the original space's, every axis in its own scale."""
    share = 1.0
    for p in original:
        r = region[p.name]
        if isinstance(p, CategoricalParam):
            share *= len(r.choices) / len(p.choices)  # type: ignore[union-attr]
        else:
            width = p.to_scale(p.high) - p.to_scale(p.low)
            share *= (r.to_scale(r.high) - r.to_scale(r.low)) / width  # type: ignore[union-attr]
    return share


def lowest_regret(region: SearchSpace, problem: Any, samples: int = 256) -> float:
    """The lowest true regret inside the region: 0 when it holds an optimum, else a
    Sobol sample of the box polished by L-BFGS-B from its best three points."""
    if any(inside(region, o) for o in problem.optima):
        return 0.0
    from scipy.optimize import minimize
    from scipy.stats import qmc

    def regret(u: np.ndarray) -> float:
        point = region.from_unit(np.clip(u, 0.0, 1.0).tolist())
        return problem.true_value(point) - problem.optimum

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        unit = qmc.Sobol(d=len(region), scramble=True, seed=0).random(samples)
    values = [regret(u) for u in unit]
    best = min(values)
    for i in np.argsort(values)[:3]:
        res = minimize(regret, unit[i], method="L-BFGS-B", bounds=[(0.0, 1.0)] * len(region))
        best = min(best, float(res.fun))
    return max(best, 0.0)


def near_optimum(point: dict[str, Any], original: SearchSpace, problem: Any) -> bool:
    """The point is as good as a typical point within ``NEAR`` of every axis's range of a
    true optimum: its true regret is at most the median regret of that neighbourhood. (In
    regret, not distance: a parameter that hardly matters, like lr-dominant's weight
    decay, need not be pinned down for a point to sit in the optimum's basin.)"""
    return problem.true_value(point) - problem.optimum <= near_regret(original, problem)


_NEAR_REGRET: dict[str, float] = {}


def near_regret(original: SearchSpace, problem: Any, samples: int = 512) -> float:
    """The median true regret within ``NEAR`` of every axis's range of an optimum (a
    Sobol sample of each optimum's neighbourhood), computed once per problem."""
    if problem.name not in _NEAR_REGRET:
        from scipy.stats import qmc

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            unit = qmc.Sobol(d=len(original), scramble=True, seed=0).random(samples)
        regrets = []
        for o in problem.optima:
            for u in unit:
                point = {
                    p.name: o[p.name]  # a categorical stays at the optimum's choice
                    if isinstance(p, CategoricalParam)
                    else p.inside(
                        p.from_scale(
                            p.to_scale(o[p.name])
                            + (2 * x - 1) * NEAR * (p.to_scale(p.high) - p.to_scale(p.low))
                        )
                    )
                    for p, x in zip(original, u, strict=True)
                }
                regrets.append(problem.true_value(point) - problem.optimum)
        _NEAR_REGRET[problem.name] = float(np.median(regrets))
    return _NEAR_REGRET[problem.name]


def measure(region: SearchSpace, original: SearchSpace, problem: Any) -> dict[str, float]:
    """``contains`` (0/1), ``regret`` and ``volume`` of one region."""
    return {
        "contains": float(any(inside(region, o) for o in problem.optima)),
        "regret": lowest_regret(region, problem),
        "volume": volume_share(region, original),
    }


def median(xs: list[float]) -> float:
    return float(np.median(xs)) if xs else math.nan
