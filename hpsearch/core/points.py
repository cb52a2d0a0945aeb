"""Point sets for a space: log-uniform random, scrambled Sobol, an even grid, and the
previous stage's best trials promoted into a narrowed space.

Points are a pure function of (space, count, seed): workers never sample on their own, so
a search evaluates the same points on 1 worker as on 8, and again on rerun. (Optuna's
GridSampler repeats or skips points across processes, and two processes seeding
RandomSampler alike draw the same points; see docs/design.md.)
"""

from __future__ import annotations

import math
import warnings
from itertools import product
from typing import Any

from hpsearch.core.records import TrialRecord, rank
from hpsearch.core.space import Param, SearchSpace

Point = dict[str, Any]


class GridError(ValueError):
    """The grid cannot have exactly the number of points asked for."""


def derive_seed(*parts: int) -> int:
    """A 31-bit seed from a tuple of integers (search seed, stage index, slot...).

    SeedSequence mixes the parts, so neighbouring stages or slots get unrelated streams.
    numpy is imported by the functions that draw (here and below), not by the module:
    reading a search (a relaunch's checks, which import stage preparation) needs none.
    """
    import numpy as np

    return (
        int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0]) >> 1
    )


def random_points(space: SearchSpace, n: int, seed: int) -> list[Point]:
    """``n`` points uniform in each parameter's scale: log-uniform where ``log = true``."""
    import numpy as np

    u = np.random.default_rng(seed).random((n, len(space)))
    return [space.from_unit(row.tolist()) for row in u]


def sobol_points(space: SearchSpace, n: int, seed: int) -> list[Point]:
    """``n`` points of a scrambled Sobol sequence: covers the box more evenly than random
    for the same count, which helps a small coarse stage."""
    from scipy.stats import qmc

    with warnings.catch_warnings():
        # Sobol balance properties hold for powers of two; a prefix is still low-discrepancy.
        warnings.simplefilter("ignore", UserWarning)
        u = qmc.Sobol(d=len(space), scramble=True, seed=seed).random(n)
    return [space.from_unit(row.tolist()) for row in u]


def _factorizations(m: int, caps: list[int]) -> list[tuple[int, ...]]:
    """Ordered factorizations of ``m`` into ``len(caps)`` factors, each in ``[2, cap]``."""
    if not caps:
        return [()] if m == 1 else []
    out: list[tuple[int, ...]] = []
    for f in range(2, min(m, caps[0]) + 1):
        if m % f == 0:
            out.extend((f, *rest) for rest in _factorizations(m // f, caps[1:]))
    return out


def _numeric_shape(m: int, caps: list[int]) -> tuple[int, ...] | None:
    """The most even factorization of ``m`` over the numeric parameters, or None."""
    options = _factorizations(m, caps)
    if not options:
        return None
    # Most even first; among equals, give more levels to the earlier parameters (the file's
    # order, where the important ones usually come first).
    return min(options, key=lambda t: (max(t) / min(t), [-f for f in t]))


def grid_shape(space: SearchSpace, n: int) -> tuple[int, ...]:
    """Levels per parameter so that the full grid has exactly ``n`` points.

    Categoricals take all their choices; every numeric parameter gets at least 2 values,
    as evenly as ``n`` allows. Raises :class:`GridError` naming the nearest counts that work.
    """
    cats = math.prod(p.max_levels() for p in space if not p.numeric)
    caps = [p.max_levels() for p in space if p.numeric]
    shape = _numeric_shape(n // cats, caps) if n % cats == 0 else None
    if shape is None:
        raise GridError(_grid_hint(space, n, cats, caps))
    it = iter(shape)
    return tuple(next(it) if p.numeric else p.max_levels() for p in space)


def _grid_hint(space: SearchSpace, n: int, cats: int, caps: list[int]) -> str:
    def fits(m: int) -> bool:
        return m % cats == 0 and _numeric_shape(m // cats, caps) is not None

    below = next((m for m in range(n - 1, 0, -1) if fits(m)), None)
    above = next((m for m in range(n + 1, 8 * n + 64) if fits(m)), None)
    near = [str(m) for m in (below, above) if m]
    what = f"a grid over {len(space)} parameter(s)"
    if cats > 1:
        what += f" whose categorical choices alone make {cats} combinations"
    if not near:
        return f"{what} cannot have exactly {n} points; use sampler = 'random' or 'sobol'"
    return (
        f"{what} cannot have exactly {n} points (each numeric parameter needs at least 2 "
        f"values); use trials = {' or '.join(near)}, or sampler = 'random'"
    )


def grid_points(space: SearchSpace, n: int, seed: int) -> list[Point]:
    """The full grid of exactly ``n`` points, in a seeded shuffled order.

    Shuffling spreads each parameter's values over the slots, so a stage stopped halfway
    still covers the box. Where no exact grid exists (a narrowed later stage), the largest
    grid below ``n`` is topped up with random points so that the budget stays exact.
    """
    import numpy as np

    try:
        shape = grid_shape(space, n)
        extra = 0
    except GridError:
        shape, extra = _largest_grid(space, n)
    axes = [p.grid_levels(k) for p, k in zip(space, shape, strict=True)]
    pts = [dict(zip(space.names, combo, strict=True)) for combo in product(*axes)]
    order = np.random.default_rng(seed).permutation(len(pts))
    pts = [pts[i] for i in order]
    if extra:
        pts += random_points(space, extra, seed + 1)
    return pts


def _largest_grid(space: SearchSpace, n: int) -> tuple[tuple[int, ...], int]:
    for m in range(n - 1, 0, -1):
        try:
            return grid_shape(space, m), n - m
        except GridError:
            continue
    return tuple(1 for _ in space), n - 1


def make_points(sampler: str, space: SearchSpace, n: int, seed: int) -> list[Point]:
    """Points for a stage. ``tpe`` is adaptive: its slots are empty, filled at run time."""
    if sampler == "random":
        return random_points(space, n, seed)
    if sampler == "sobol":
        return sobol_points(space, n, seed)
    if sampler == "grid":
        return grid_points(space, n, seed)
    if sampler == "tpe":
        return [{} for _ in range(n)]
    raise ValueError(f"unknown sampler {sampler!r}")


def continue_points(
    sampler: str, space: SearchSpace, start: int, n: int, seed: int
) -> list[Point]:
    """Points ``start .. start + n - 1`` of the stage's sequence: more of the same stage.

    Random and Sobol sequences are prefix-stable (``make_points`` of ``m`` points begins
    with the ``k < m`` points it gives for ``k``), so the points already handed out stay
    as they were, on any worker. A grid cannot grow (``spec`` refuses it); TPE's are empty.
    """
    if sampler == "grid":
        raise ValueError("a grid's points cannot be continued")
    return make_points(sampler, space, start + n, seed)[start:]


def promoted_points(
    space: SearchSpace, records: list[TrialRecord], n: int, direction: str
) -> list[Point]:
    """The params of the best ``n`` usable trials of ``records``, best first, as points of
    ``space`` (successive halving's promotion: re-run the winners at a longer length).

    Deterministic: a function of the records only (ties keep trial-number order). Failed
    and diverged trials are never promoted, so fewer than ``n`` points come back when fewer
    trials gave a usable value. Each point is put inside ``space``, which a narrowed region
    may have made smaller than the space the trials ran in: a number outside its range is
    clipped to the nearest bound (an int snapped onto its step), and a categorical value
    the region dropped becomes the best trial's value, which the region always keeps.
    """
    if n <= 0:
        return []
    best = [r for r in rank(records, direction) if r.ok][:n]
    return [_into(space, r.params, best[0].params) for r in best]


def _into(space: SearchSpace, params: dict[str, Any], fallback: dict[str, Any]) -> Point:
    return {
        p.name: p.inside(params.get(p.name, fallback.get(p.name)), fallback.get(p.name))
        for p in space
    }


def distinct_values(points: list[Point], p: Param) -> int:
    """How many distinct values of ``p`` a point set tries (grid: ~n**(1/d); random: n)."""
    return len({repr(pt[p.name]) for pt in points if p.name in pt})
