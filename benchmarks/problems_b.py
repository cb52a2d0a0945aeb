"""Benchmark problems with a known optimum and a fidelity axis (epochs).

Each is an ordinary hpsearch objective ``fn(params, epochs, report) -> float``: it "trains"
for ``epochs`` epochs and reports a value per epoch, like a learning curve. Fidelity is
``z = epoch / max_epochs`` (``max_epochs`` comes in through the study's ``[fixed]`` table).
Short runs are *biased* (the multi-fidelity variants of Kandasamy et al., "Multi-fidelity
Bayesian optimisation with continuous approximations", ICML 2017, move the optimum at low
``z``) and *noisy* (Gaussian noise shrinking to 0 at ``z = 1``, seeded from ``report.seed``),
so a full run's value is the problem's true value and simple regret is ``value - optimum``.
The cost of a run is its number of epochs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


def _fidelity(params: dict[str, Any], epoch: int) -> float:
    return min(1.0, epoch / int(params.get("max_epochs", 9)))


def _curve(
    params: dict[str, Any],
    epochs: int,
    report: Any,
    value_at: Callable[[float], float],
    noise: float,
) -> float:
    """Report ``value_at(z) + noise * (1 - z) * N(0, 1)`` for each epoch; return the last."""
    rng = np.random.default_rng(report.seed)
    value = math.nan
    for epoch in range(1, epochs + 1):
        z = _fidelity(params, epoch)
        value = value_at(z) + noise * (1.0 - z) * float(rng.standard_normal())
        report(epoch, value)
    return value


def branin_value(x1: float, x2: float, z: float = 1.0) -> float:
    """Multi-fidelity Branin (Kandasamy et al. 2017): b, c, t drift as z drops."""
    b = 5.1 / (4 * math.pi**2) - 0.01 * (1 - z)
    c = 5 / math.pi - 0.1 * (1 - z)
    t = 1 / (8 * math.pi) + 0.05 * (1 - z)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def branin(params: dict[str, Any], epochs: int, report: Any) -> float:
    """Branin on x1 in [-5, 10], x2 in [0, 15]; optimum 0.397887 (three minima)."""
    return _curve(
        params, epochs, report, lambda z: branin_value(params["x1"], params["x2"], z), 2.0
    )


_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H6_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)


def hartmann6_value(x: list[float], z: float = 1.0) -> float:
    """Multi-fidelity Hartmann-6 (Kandasamy et al. 2017): alpha - 0.1 (1 - z)."""
    alpha = _H6_ALPHA - 0.1 * (1 - z)
    inner = np.sum(_H6_A * (np.asarray(x) - _H6_P) ** 2, axis=1)
    return float(-np.sum(alpha * np.exp(-inner)))


def hartmann6(params: dict[str, Any], epochs: int, report: Any) -> float:
    """Hartmann-6 on [0, 1]^6; optimum -3.32237."""
    x = [params[f"x{i}"] for i in range(1, 7)]
    return _curve(params, epochs, report, lambda z: hartmann6_value(x, z), 0.2)


def lr_dominant_value(lr: float, wd: float, width: float, z: float = 1.0) -> float:
    """A learning-rate-like parameter matters ~100x more than the other two; short runs
    prefer a larger rate (as real short trainings do), shifting its optimum by 0.5 decade."""
    centre = -2.7 + 0.5 * (1 - z)
    return (
        (math.log10(lr) - centre) ** 2
        + 0.01 * (math.log10(wd) + 4) ** 2
        + 0.04 * (width - 0.6) ** 2
    )


def lr_dominant(params: dict[str, Any], epochs: int, report: Any) -> float:
    """lr in [1e-5, 1] (log), wd in [1e-6, 1e-2] (log), width in [0, 1]; optimum 0."""
    return _curve(
        params,
        epochs,
        report,
        lambda z: lr_dominant_value(params["lr"], params["wd"], params["width"], z),
        0.3,
    )


@dataclass(frozen=True)
class Problem:
    """A benchmark problem: its objective, its space as study-file text, its optimum."""

    name: str
    objective: str  # module:function, importable from this folder
    space_toml: str
    optimum: float
    true_value: Callable[[dict[str, Any]], float]  # the full-fidelity, noise-free value


def _unit_space(names: list[str]) -> str:
    return "".join(f"[space.{n}]\nlow = 0.0\nhigh = 1.0\n" for n in names)


PROBLEMS = {
    "branin": Problem(
        "branin",
        "problems_b:branin",
        "[space.x1]\nlow = -5.0\nhigh = 10.0\n[space.x2]\nlow = 0.0\nhigh = 15.0\n",
        0.397887,
        lambda p: branin_value(p["x1"], p["x2"]),
    ),
    "hartmann6": Problem(
        "hartmann6",
        "problems_b:hartmann6",
        _unit_space([f"x{i}" for i in range(1, 7)]),
        -3.32237,
        lambda p: hartmann6_value([p[f"x{i}"] for i in range(1, 7)]),
    ),
    "lr_dominant": Problem(
        "lr_dominant",
        "problems_b:lr_dominant",
        "[space.lr]\nlow = 1e-5\nhigh = 1.0\nlog = true\n"
        "[space.wd]\nlow = 1e-6\nhigh = 1e-2\nlog = true\n"
        "[space.width]\nlow = 0.0\nhigh = 1.0\n",
        0.0,
        lambda p: lr_dominant_value(p["lr"], p["wd"], p["width"]),
    ),
}


def study_text(problem: Problem, *, budget: int, max_epochs: int, seed: int) -> str:
    """A study file that lets hpsearch plan the stages from the budget."""
    return (
        f'name = "{problem.name}"\nobjective = "{problem.objective}"\nmetric = "value"\n'
        f"seed = {seed}\nbudget = {budget}\nmax_epochs = {max_epochs}\n"
        f"[fixed]\nmax_epochs = {max_epochs}\n{problem.space_toml}"
    )
