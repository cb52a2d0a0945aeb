"""Where the optimum lies, and how sure the runs make us: a Gaussian process over them.

The promising region a report ends with is a claim: "the best settings lie in here". This
module turns the search's full-length runs into a probability for that claim. A Gaussian
process (Matérn 5/2, one length scale per parameter, fitted by marginal likelihood; values
turned into normal scores by rank, so one diverging corner cannot flatten the rest) is
fitted on the runs in the unit cube of the searched space; functions are drawn from its
posterior over a cloud of candidate points (the runs, points around the best of them, and
points spread over the whole space), and each draw's minimiser is one sample of where the
optimum lies. The share of those samples inside a box is the box's confidence; the box
reported is the smallest (by peeling) that holds a target share. The posterior's spread is
widened by ``TEMPER`` before drawing: a GP fitted on a few dozen runs is too sure of
itself, and the factor was chosen so that stated confidence matched the measured rate on
the tuning set of the benchmark suite (``benchmarks/region_confidence.py``,
``docs/regions.md``).

Pure numpy: no Optuna, no scikit-learn; a region of a few hundred runs takes well under a
second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from hpsearch.core.space import Param, SearchSpace

#: Posterior draws of the optimum's location.
DRAWS = 512
#: Candidates spread over the whole space, and around each of the best runs.
SPREAD = 256
AROUND = 32
BEST_RUNS = 10
#: The posterior's standard deviation is multiplied by this before drawing (see the
#: module docstring; chosen on the tuning set).
TEMPER = 1.0
#: Each side of a numeric box edge is padded by this share of the range: a minimiser is
#: found among candidates, and the optimum lies between them.
PAD = 0.02
#: The shortest length scale the model may fit, as a share of a parameter's range: a few
#: dozen runs cannot tell a narrower bump from noise, and a shorter scale makes every
#: point away from the runs as likely a minimiser as the best of them.
LS_FLOOR = 0.0


@dataclass(frozen=True)
class Encoding:
    """The unit cube of ``space``: one column per numeric parameter (its scale mapped to
    [0, 1]) and one per choice of a categorical (one-hot)."""

    space: SearchSpace

    @property
    def columns(self) -> list[tuple[int, Any]]:
        """(parameter index, choice or None) per column."""
        out: list[tuple[int, Any]] = []
        for i, p in enumerate(self.space):
            if not p.numeric:
                out += [(i, c) for c in p.choices]
            else:
                out.append((i, None))
        return out

    def encode(self, point: dict[str, Any]) -> np.ndarray:
        row: list[float] = []
        for p in self.space:
            v = point[p.name]
            if not p.numeric:
                row += [1.0 if repr(c) == repr(v) else 0.0 for c in p.choices]
            else:
                lo, hi = p.to_scale(p.low), p.to_scale(p.high)
                row.append((p.to_scale(v) - lo) / (hi - lo) if hi > lo else 0.5)
        return np.array(row)

    def random(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` points spread uniformly over the cube (one choice per categorical)."""
        cols = []
        for p in self.space:
            if not p.numeric:
                k = len(p.choices)
                cols.append(np.eye(k)[rng.integers(0, k, n)])
            else:
                cols.append(rng.random((n, 1)))
        return np.hstack(cols)

    def around(
        self, rng: np.random.Generator, x: np.ndarray, n: int, scale: np.ndarray
    ) -> np.ndarray:
        """``n`` points near ``x``: numeric columns moved by Gaussian steps of ``scale``
        (per column), a categorical switched to another choice one time in five."""
        out = np.repeat(x[None, :], n, axis=0)
        j = 0
        for p in self.space:
            if not p.numeric:
                k = len(p.choices)
                switch = rng.random(n) < 0.2
                out[switch, j : j + k] = np.eye(k)[rng.integers(0, k, int(switch.sum()))]
                j += k
            else:
                out[:, j] = np.clip(out[:, j] + rng.normal(0.0, scale[j], n), 0.0, 1.0)
                j += 1
        return out


def normal_scores(y: np.ndarray) -> np.ndarray:
    """Values as normal scores of their ranks (ties share their mean rank)."""
    from statistics import NormalDist

    order = np.argsort(y, kind="stable")
    ranks = np.empty(len(y))
    ranks[order] = np.arange(len(y))
    for v in np.unique(y):  # ties: the mean rank
        same = y == v
        ranks[same] = ranks[same].mean()
    nd = NormalDist()
    return np.array([nd.inv_cdf((r + 0.5) / len(y)) for r in ranks])


def _matern52(a: np.ndarray, b: np.ndarray, ls: np.ndarray) -> np.ndarray:
    d = np.sqrt(np.maximum(((a[:, None, :] - b[None, :, :]) / ls) ** 2, 0.0).sum(-1))
    s = math.sqrt(5.0) * d
    return (1.0 + s + s * s / 3.0) * np.exp(-s)


def _profile_loglik(x: np.ndarray, y: np.ndarray, ls: np.ndarray, noise: float) -> float:
    """Log marginal likelihood with the signal variance profiled out (its MLE)."""
    n = len(y)
    k = _matern52(x, x, ls) + (noise + 1e-8) * np.eye(n)
    try:
        chol = np.linalg.cholesky(k)
    except np.linalg.LinAlgError:
        return -math.inf
    alpha = np.linalg.solve(chol, y)
    s2 = float(alpha @ alpha) / n
    return -0.5 * n * math.log(max(s2, 1e-12)) - float(np.log(np.diag(chol)).sum())


@dataclass(frozen=True)
class GP:
    x: np.ndarray
    y: np.ndarray
    ls: np.ndarray
    noise: float
    s2: float
    chol: np.ndarray
    alpha: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, floor: float = 0.0) -> GP:
        """Length scales and noise by profiled marginal likelihood: an isotropic grid,
        then two passes of one length scale at a time."""
        dims = x.shape[1]
        best = (-math.inf, np.ones(dims), 0.01)
        for l0 in [max(floor, g) for g in (0.05, 0.1, 0.2, 0.35, 0.6, 1.0, 2.0)]:
            for noise in (1e-3, 0.01, 0.05, 0.2, 0.5):
                ll = _profile_loglik(x, y, np.full(dims, l0), noise)
                if ll > best[0]:
                    best = (ll, np.full(dims, l0), noise)
        ll, ls, noise = best
        for _ in range(2):
            for d in range(dims):
                for f in (0.25, 0.5, 2.0, 4.0, 20.0):
                    trial = ls.copy()
                    trial[d] = min(max(ls[d] * f, floor), 50.0)
                    cand = _profile_loglik(x, y, trial, noise)
                    if cand > ll:
                        ll, ls = cand, trial
            for nz in (noise / 4, noise * 4):
                cand = _profile_loglik(x, y, ls, nz)
                if cand > ll:
                    ll, noise = cand, nz
        k = _matern52(x, x, ls) + (noise + 1e-8) * np.eye(len(y))
        chol = np.linalg.cholesky(k)
        alpha0 = np.linalg.solve(chol, y)
        s2 = float(alpha0 @ alpha0) / len(y)
        alpha = np.linalg.solve(chol.T, alpha0)
        return cls(x, y, ls, noise, s2, chol, alpha)

    def draws(self, c: np.ndarray, n: int, rng: np.random.Generator, temper: float) -> np.ndarray:
        """``n`` joint posterior draws at the candidates ``c``: shape (n, len(c))."""
        kc = _matern52(c, self.x, self.ls)
        mean = kc @ self.alpha
        v = np.linalg.solve(self.chol, kc.T)
        cov = self.s2 * (_matern52(c, c, self.ls) - v.T @ v)
        cov = (cov + cov.T) / 2 + 1e-6 * self.s2 * np.eye(len(c))
        w, q = np.linalg.eigh(cov)
        root = q * np.sqrt(np.clip(w, 0.0, None))
        z = rng.standard_normal((len(c), n))
        return (mean[:, None] + temper * (root @ z)).T


def optimum_draws(
    space: SearchSpace,
    points: list[dict[str, Any]],
    values: list[float],
    *,
    direction: str,
    fidelity: list[float] | None = None,
    seed: int = 0,
    draws: int = DRAWS,
    temper: float = TEMPER,
    floor: float = LS_FLOOR,
) -> np.ndarray:
    """Samples of where the optimum lies, in ``Encoding(space)`` columns: one row per
    posterior draw, the candidate where that draw is best.

    ``fidelity`` (1 for a full-length run, less for a shorter one: the share of the
    epochs it ran, in log scale) is one more input of the model, and candidates sit at
    fidelity 1: runs stopped early then say where the model need not look, as far as they
    agree with the full-length ones, without their values counting as full-length."""
    enc = Encoding(space)
    x = np.array([enc.encode(p) for p in points])
    full = np.ones(len(points), dtype=bool)
    if fidelity is not None:
        fid = np.asarray(fidelity, dtype=float)
        full = fid >= 1.0 - 1e-9
        x = np.hstack([x, fid[:, None]])
    y = np.array(values, dtype=float) * (1.0 if direction == "minimize" else -1.0)
    z = normal_scores(y)
    gp = GP.fit(x, z, floor)
    rng = np.random.default_rng(seed)
    xs = x[:, : x.shape[1] - (fidelity is not None)]
    zf = np.where(full, z, np.inf)
    best = [i for i in np.argsort(zf, kind="stable")[:BEST_RUNS] if full[i]]
    scale = np.minimum(gp.ls[: xs.shape[1]] / 2, 0.25)
    cand = [xs[full], enc.random(rng, SPREAD)]
    cand += [enc.around(rng, xs[i], AROUND, scale) for i in best]
    c = np.unique(np.vstack(cand), axis=0)
    at = np.hstack([c, np.ones((len(c), 1))]) if fidelity is not None else c
    f = gp.draws(at, draws, rng, temper)
    return c[np.argmin(f, axis=1)]


@dataclass(frozen=True)
class Box:
    """A box in the encoded cube: [low, high] per numeric column, a set of choices per
    categorical parameter (``choices[i]``), and the share of draws inside."""

    low: dict[int, float]
    high: dict[int, float]
    choices: dict[int, frozenset[Any]]
    mass: float


def _param_columns(enc: Encoding) -> list[list[int]]:
    cols = enc.columns
    return [[j for j, (i, _) in enumerate(cols) if i == k] for k in range(len(enc.space))]


def _decode(enc: Encoding, samples: np.ndarray) -> list[list[Any]]:
    """Per parameter: each sample's unit value (numeric) or choice (categorical)."""
    out = []
    for p, js in zip(enc.space, _param_columns(enc), strict=True):
        if not p.numeric:
            out.append([p.choices[int(k)] for k in np.argmax(samples[:, js], axis=1)])
        else:
            out.append(samples[:, js[0]].tolist())
    return out


def peel(space: SearchSpace, samples: np.ndarray, target: float, pad: float = PAD) -> Box:
    """The box holding at least ``target`` of ``samples``, by peeling: from the bounding
    box of all, drop the sample at whichever face shrinks the (padded) box most for one
    sample, a categorical choice when dropping it costs no more than ``target`` allows,
    until one more would leave less than ``target``."""
    enc = Encoding(space)
    per = _decode(enc, samples)
    n = len(samples)
    keep = np.ones(n, dtype=bool)
    need = math.ceil(target * n - 1e-9)
    numeric = [i for i, p in enumerate(space) if p.numeric]
    cats = [i for i, p in enumerate(space) if not p.numeric]
    vals = {i: np.array(per[i]) for i in numeric}

    def width(i: int, mask: np.ndarray) -> float:
        v = vals[i][mask]
        return min(1.0, float(v.max()) + pad) - max(0.0, float(v.min()) - pad)

    step = max(1, n // 50)  # peel a face by about 2% of the draws at a time
    while True:
        best: tuple[float, np.ndarray] | None = None
        for i in numeric:
            v = vals[i]
            idx = np.flatnonzero(keep)
            order = idx[np.argsort(v[idx], kind="stable")]
            low_cut, high_cut = (
                v[order[min(step, len(order)) - 1]],
                v[order[-min(step, len(order))]],
            )
            for trial in (keep & (v > low_cut), keep & (v < high_cut)):
                dropped = int(keep.sum() - trial.sum())
                if dropped == 0 or trial.sum() < need:
                    continue
                gain = (width(i, keep) / width(i, trial)) ** (1.0 / dropped)
                if best is None or gain > best[0]:
                    best = (gain, trial)
        for i in cats:
            choices = np.array([repr(c) for c in per[i]], dtype=object)
            present = sorted(set(choices[keep]))
            if len(present) < 2:
                continue
            for c in present:
                trial = keep & (choices != c)
                dropped = int(keep.sum() - trial.sum())
                if trial.sum() < need or dropped == 0:
                    continue
                gain = (len(present) / (len(present) - 1)) ** (1.0 / dropped)
                if best is None or gain > best[0]:
                    best = (gain, trial)
        if best is None or best[0] <= 1.0 + 1e-12:
            break
        keep = best[1]
    low, high, sets = {}, {}, {}
    for i in numeric:
        v = vals[i][keep]
        low[i], high[i] = max(0.0, float(v.min()) - pad), min(1.0, float(v.max()) + pad)
    for i in cats:
        sets[i] = frozenset(repr(c) for c, k in zip(per[i], keep, strict=True) if k)
    box = Box(low, high, sets, 0.0)
    return Box(low, high, sets, mass(space, samples, box))


def inside(space: SearchSpace, samples: np.ndarray, box: Box) -> np.ndarray:
    enc = Encoding(space)
    per = _decode(enc, samples)
    ok = np.ones(len(samples), dtype=bool)
    for i, p in enumerate(space):
        if not p.numeric:
            ok &= np.array([repr(c) in box.choices[i] for c in per[i]])
        else:
            v = np.array(per[i])
            ok &= (v >= box.low[i] - 1e-12) & (v <= box.high[i] + 1e-12)
    return ok


def mass(space: SearchSpace, samples: np.ndarray, box: Box) -> float:
    return float(inside(space, samples, box).mean()) if len(samples) else 0.0


def box_space(space: SearchSpace, box: Box) -> SearchSpace:
    """The box as a SearchSpace: numeric ranges in the parameters' own terms (an int
    range on its grid), categoricals as the set of choices kept."""
    params: list[Param] = []
    for i, p in enumerate(space):
        if not p.numeric:
            params.append(p.keeping(c for c in p.choices if repr(c) in box.choices[i]))
        else:
            lo, hi = p.to_scale(p.low), p.to_scale(p.high)
            low = p.from_scale(lo + box.low[i] * (hi - lo))
            high = p.from_scale(lo + box.high[i] * (hi - lo))
            params.append(p.with_range(max(low, p.low), min(high, p.high)))
    return SearchSpace(tuple(params))


def box_mass(space: SearchSpace, samples: np.ndarray, region: SearchSpace) -> float:
    """The share of ``samples`` (encoded in ``space``) inside ``region`` (a SearchSpace
    over the same parameters, in their own units)."""
    per = _decode(Encoding(space), samples)
    ok = np.ones(len(samples), dtype=bool)
    for i, p in enumerate(space):
        r = region[p.name]
        if not p.numeric:
            kept = {repr(c) for c in r.choices}  # type: ignore[union-attr]
            ok &= np.array([repr(c) in kept for c in per[i]])
        else:
            lo, hi = p.to_scale(p.low), p.to_scale(p.high)
            v = lo + np.array(per[i]) * (hi - lo)
            ok &= (v >= r.to_scale(r.low) - 1e-9) & (v <= r.to_scale(r.high) + 1e-9)  # type: ignore[union-attr]
    return float(ok.mean()) if len(samples) else 0.0
