"""Benchmark problems with a known optimum and a fidelity axis (epochs).

Each problem is an ordinary hpsearch objective ``fn(params, epochs, report) -> float``, so
the benchmark runs it through the real engine like a user's training function. A run of
``epochs`` epochs reports one value per epoch; the value after epoch ``e`` does not depend
on how many epochs the run was given (as for a training run with a fixed schedule), so a
1-epoch run sees exactly what a pruner sees at its first rung.

Low fidelity (few epochs) is *biased* (the optimum of a short run is not the optimum of a
full one) and *noisy* (noise shrinks as runs get longer), with the noise seeded from
``report.seed``: the same trial gives the same values on every machine. Cost grows
linearly with fidelity, since the budget is counted in epochs.

Simple regret is measured on the noise-free full-fidelity function (``true_value``) at the
configuration a method would recommend, minus ``optimum``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The fixed parameter that tells a problem how many epochs a full run has (``study_text``
#: sets it from the study's ``max_epochs``), so that fidelity 1 is the final stage's length.
FULL_EPOCHS = "full_epochs"
#: A fixed parameter that makes every epoch sleep this many seconds: a fixed epoch cost, for
#: wall-clock measurements with several workers (``benchmarks/wall_clock.py``).
EPOCH_SECONDS = "epoch_seconds"
#: A fixed parameter that spreads run durations: each run's epoch cost is
#: ``epoch_seconds`` times a log-normal factor of this sigma and mean 1, drawn from the
#: run's seed (the same run lasts as long on every machine).
EPOCH_SIGMA = "epoch_sigma"


def _fidelity(epoch: int, max_epochs: int) -> float:
    return min(epoch, max_epochs) / max_epochs


def _full(params: dict[str, Any], default: int) -> int:
    return int(params.get(FULL_EPOCHS, default))


def _pause(params: dict[str, Any]) -> float:
    return float(params.get(EPOCH_SECONDS, 0.0))


def _sigma(params: dict[str, Any]) -> float:
    return float(params.get(EPOCH_SIGMA, 0.0))


def _noisy_curve(
    value_at: Callable[[float], float],
    noise_at: Callable[[float], float],
    epochs: int,
    max_epochs: int,
    report: Any,
    pause: float = 0.0,
    sigma: float = 0.0,
) -> float:
    """Report ``value_at(z) + noise_at(z) * eps`` after each epoch (after sleeping
    ``pause`` seconds, an epoch's fixed cost, times a log-normal factor of ``sigma`` drawn
    once per run); return the last."""
    eps = np.random.default_rng(int(report.seed)).standard_normal(epochs)
    if pause and sigma:
        draw = float(np.random.default_rng([int(report.seed), 1]).standard_normal())
        pause *= math.exp(sigma * draw - sigma**2 / 2)
    value = math.nan
    for e in range(1, epochs + 1):
        if pause:
            time.sleep(pause)
        z = _fidelity(e, max_epochs)
        value = value_at(z) + noise_at(z) * float(eps[e - 1])
        report(e, value)
    return value


# --------------------------------------------------------------------------- Branin
# Multi-fidelity Branin of Kandasamy et al. (BOCA, ICML 2017): the coefficients drift with
# 1 - z, so the minimisers of low-fidelity Branin sit away from the true ones.
BRANIN_MAX_EPOCHS = 9


def _branin(x1: float, x2: float, z: float) -> float:
    b = 5.1 / (4 * math.pi**2) - 0.01 * (1 - z)
    c = 5 / math.pi - 0.1 * (1 - z)
    t = 1 / (8 * math.pi) + 0.05 * (1 - z)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def branin(params: dict[str, Any], epochs: int, report: Any) -> float:
    """Multi-fidelity Branin over x1 in [-5, 10], x2 in [0, 15]; minimum 0.397887."""
    x1, x2 = float(params["x1"]), float(params["x2"])
    return _noisy_curve(
        lambda z: _branin(x1, x2, z),
        lambda z: 0.02 + 3.0 * (1 - z),
        epochs,
        _full(params, BRANIN_MAX_EPOCHS),
        report,
        _pause(params),
        _sigma(params),
    )


def branin_true(params: dict[str, Any]) -> float:
    return _branin(float(params["x1"]), float(params["x2"]), 1.0)


# --------------------------------------------------------------------------- Hartmann-6
# Multi-fidelity Hartmann-6 (Kandasamy et al. 2017): alpha' = alpha - 0.1 (1 - z).
HARTMANN_MAX_EPOCHS = 9
_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)


def _hartmann6(x: np.ndarray, z: float) -> float:
    alpha = _H_ALPHA - 0.1 * (1 - z)
    return float(-np.sum(alpha * np.exp(-np.sum(_H_A * (x - _H_P) ** 2, axis=1))))


def _h_x(params: dict[str, Any]) -> np.ndarray:
    return np.array([float(params[f"x{i}"]) for i in range(1, 7)])


def hartmann6(params: dict[str, Any], epochs: int, report: Any) -> float:
    """Multi-fidelity Hartmann-6 over [0, 1]^6; minimum -3.32237."""
    x = _h_x(params)
    return _noisy_curve(
        lambda z: _hartmann6(x, z),
        lambda z: 0.01 + 0.3 * (1 - z),
        epochs,
        _full(params, HARTMANN_MAX_EPOCHS),
        report,
        _pause(params),
        _sigma(params),
    )


def hartmann6_true(params: dict[str, Any]) -> float:
    return _hartmann6(_h_x(params), 1.0)


# --------------------------------------------------------------------------- one that matters
# A training-like loss where the learning rate matters far more than the other three
# parameters (Bergstra & Bengio 2012's low effective dimension): a grid spends its budget
# on combinations of the unimportant ones and tries only a few learning rates. Short runs
# favour larger learning rates (the low-fidelity optimum sits half a decade higher), as
# they do in real training.
LR_MAX_EPOCHS = 9
LR_BEST = -2.3  # log10 of the full-fidelity optimum; not on any even log grid of [1e-5, 1]


def _lr_loss(params: dict[str, Any], z: float) -> float:
    lr = math.log10(float(params["lr"])) - (LR_BEST + 0.5 * (1 - z))
    wd = (math.log10(float(params["weight_decay"])) + 4.0) / 4.0  # decades of its range
    return (
        lr**2
        + 0.03 * wd**2
        + 0.03 * (float(params["momentum"]) - 0.9) ** 2
        + 0.03 * (float(params["dropout"]) - 0.1) ** 2
        + 0.5 * (1 - z)  # short runs have not converged: higher loss, same for everyone
    )


def lr_dominant(params: dict[str, Any], epochs: int, report: Any) -> float:
    """Learning rate dominant, three nearly irrelevant parameters; minimum 0."""
    return _noisy_curve(
        lambda z: _lr_loss(params, z),
        lambda z: 0.01 + 0.4 * (1 - z),
        epochs,
        _full(params, LR_MAX_EPOCHS),
        report,
        _pause(params),
        _sigma(params),
    )


def lr_dominant_true(params: dict[str, Any]) -> float:
    return _lr_loss(params, 1.0)


# --------------------------------------------------------------------------- one that misleads
# Learning curves that cross, as in real training: a large learning rate and no dropout
# learn fastest at first but end worse; the best full-length settings start slowly. At
# 1 epoch the optimum sits 0.75 decades above the full-length one and dropout's at 0.06
# instead of 0.5, with noise of 0.6 against 0.01 at full length, so a coarse stage of
# short runs points to the wrong box. Much larger bias and noise than Hartmann-6's.
CROSSING_MAX_EPOCHS = 9


def _crossing(params: dict[str, Any], z: float) -> float:
    u = math.log10(float(params["lr"]))
    speed = 10 ** (u + 2.5)  # epochs to converge shrink as the learning rate grows
    return (
        0.3 * (u + 3.0) ** 2  # where a run ends up: best at 1e-3, converged
        + 2.0 * math.exp(-speed * z * CROSSING_MAX_EPOCHS)  # how far it still has to go
        + (float(params["dropout"]) - 0.5 * z) ** 2  # dropout slows early training
        + 0.1 * (float(params["momentum"]) - 0.9) ** 2
        + 0.5 * (1 - z)
    )


def crossing(params: dict[str, Any], epochs: int, report: Any) -> float:
    """Crossing learning curves over lr, dropout and momentum; minimum ``CROSSING_MIN``."""
    return _noisy_curve(
        lambda z: _crossing(params, z),
        lambda z: 0.01 + 0.6 * (1 - z),
        epochs,
        _full(params, CROSSING_MAX_EPOCHS),
        report,
        _pause(params),
        _sigma(params),
    )


def crossing_true(params: dict[str, Any]) -> float:
    return _crossing(params, 1.0)


def _crossing_best_lr() -> float:
    """The full-length optimum's learning rate (the other two are 0.5 and 0.9)."""
    from scipy.optimize import minimize_scalar

    def f(u: float) -> float:
        return crossing_true({"lr": 10**u, "dropout": 0.5, "momentum": 0.9})

    return 10 ** float(
        minimize_scalar(f, bounds=(-4, 0), method="bounded", options={"xatol": 1e-9}).x
    )


CROSSING_BEST = {"lr": _crossing_best_lr(), "dropout": 0.5, "momentum": 0.9}


# --------------------------------------------------------------------------- the registry
@dataclass(frozen=True)
class Problem:
    """A benchmark problem: its objective (as a study file names it), space and budget.

    ``full_runs`` is the budget counted in full-length runs of ``max_epochs`` epochs; it is
    chosen so that a grid over the space exists near that many points (every numeric
    parameter needs at least 2 values), which keeps the grid baselines honest at equal
    compute. ``true_value`` is None for a problem with no known optimum (the CNN): its
    quality is then the best validation loss observed.
    """

    name: str
    objective: str
    space: dict[str, dict[str, Any]]
    max_epochs: int = 9
    full_runs: int = 64
    true_value: Callable[[dict[str, Any]], float] | None = None
    optimum: float = 0.0
    fixed: dict[str, Any] = field(default_factory=dict)
    metric: str = "loss"
    #: Where the full-length optimum lies (every global minimiser): what a promising
    #: region is checked against (``benchmarks/regions.py``).
    optima: tuple[dict[str, float], ...] = ()


PROBLEMS = {
    p.name: p
    for p in (
        Problem(
            "branin",
            "problems:branin",
            {"x1": {"low": -5.0, "high": 10.0}, "x2": {"low": 0.0, "high": 15.0}},
            full_runs=36,
            true_value=branin_true,
            optimum=0.397887357729739,
            optima=(
                {"x1": -math.pi, "x2": 12.275},
                {"x1": math.pi, "x2": 2.275},
                {"x1": 3 * math.pi, "x2": 2.475},
            ),
        ),
        Problem(
            "hartmann6",
            "problems:hartmann6",
            {f"x{i}": {"low": 0.0, "high": 1.0, "min": 0.0, "max": 1.0} for i in range(1, 7)},
            full_runs=64,  # the least that gives a grid (2 values per parameter)
            true_value=hartmann6_true,
            optimum=-3.322368011391339,
            optima=(
                dict(
                    zip(
                        [f"x{i}" for i in range(1, 7)],
                        (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573),
                        strict=True,
                    )
                ),
            ),
        ),
        Problem(
            "lr-dominant",
            "problems:lr_dominant",
            {
                "lr": {"low": 1e-5, "high": 1.0, "log": True},
                "weight_decay": {"low": 1e-8, "high": 1.0, "log": True},
                "momentum": {"low": 0.0, "high": 0.99, "min": 0.0, "max": 0.999},
                "dropout": {"low": 0.0, "high": 0.6, "min": 0.0, "max": 0.9},
            },
            full_runs=81,  # a 3 x 3 x 3 x 3 grid: 3 learning rates against 81 for random
            true_value=lr_dominant_true,
            optimum=0.0,
            optima=({"lr": 10**LR_BEST, "weight_decay": 1e-4, "momentum": 0.9, "dropout": 0.1},),
        ),
        Problem(
            "crossing",
            "problems:crossing",
            {
                "lr": {"low": 1e-4, "high": 1.0, "log": True},
                "dropout": {"low": 0.0, "high": 0.8, "min": 0.0, "max": 0.9},
                "momentum": {"low": 0.0, "high": 0.99, "min": 0.0, "max": 0.999},
            },
            full_runs=48,  # a 4 x 4 x 3 grid
            true_value=crossing_true,
            optimum=crossing_true(CROSSING_BEST),
            optima=(CROSSING_BEST,),
        ),
    )
}

#: The real thing: the built-in CNN on digits; quality is the best validation loss seen.
CNN_PROBLEM = Problem(
    "digits-cnn",
    "cnn",
    {
        "lr": {"low": 1e-4, "high": 1.0, "log": True},
        "weight_decay": {"low": 1e-6, "high": 1e-1, "log": True},
        "dropout": {"low": 0.0, "high": 0.6, "min": 0.0, "max": 0.9},
    },
    max_epochs=9,
    full_runs=16,  # reduced: ~150 epochs per contender and seed (~15 s on one core)
    fixed={"dataset": "digits", "depth": 2, "width": 16},
    metric="val_loss",
)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def study_text(problem: Problem, *, budget: int, max_epochs: int, seed: int) -> str:
    """The study file a user would write for ``problem``: the default plan's budget form."""
    fixed = dict(problem.fixed)
    if problem.true_value is not None:
        fixed[FULL_EPOCHS] = max_epochs
    lines = [
        f'name = "{problem.name}"',
        f'objective = "{problem.objective}"',
        f'metric = "{problem.metric}"',
        f"seed = {seed}",
        f"budget = {budget}",
        f"max_epochs = {max_epochs}",
        "[fixed]",
        *(f"{k} = {_toml(v)}" for k, v in fixed.items()),
    ]
    for name, table in problem.space.items():
        lines.append(f"[space.{name}]")
        lines += [f"{k} = {_toml(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"
