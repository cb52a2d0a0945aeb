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
from pathlib import Path
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


# --------------------------------------------------------------------------- issue 19's suite
# The problems below extend the five above to the suite of ``benchmarks/suite.toml``. Each
# is a sum of non-negative terms that vanish at a known point at full length (z = 1), so
# that point is the optimum, with value 0 unless stated; the terms are measured in decades
# for log-scaled parameters (``_dec``). Short runs differ by design: see each problem.


def _dec(params: dict[str, Any], name: str, best: float) -> float:
    """Decades between the parameter and ``best``."""
    return math.log10(float(params[name])) - math.log10(best)


class Diverged(FloatingPointError):
    """What the diverging problems raise, as a training loop would on a nan loss."""


def _failing_curve(
    value_at: Callable[[float], float],
    noise_at: Callable[[float], float],
    epochs: int,
    max_epochs: int,
    report: Any,
    fail_epoch: int | None,
    how: str = "raise",
) -> float:
    """``_noisy_curve`` for a run that diverges at ``fail_epoch`` (None: never): it reports
    every epoch before that one, then raises :class:`Diverged` (``how = "raise"``) or
    returns nan (``how = "nan"``), the two ways a training function fails."""
    eps = np.random.default_rng(int(report.seed)).standard_normal(epochs)
    value = math.nan
    for e in range(1, epochs + 1):
        if fail_epoch is not None and e >= fail_epoch:
            if how == "raise":
                raise Diverged(f"loss is nan at epoch {e}")
            return math.nan
        z = _fidelity(e, max_epochs)
        value = value_at(z) + noise_at(z) * float(eps[e - 1])
        report(e, value)
    return value


# biased-log6: six log-scaled parameters (two of them integers); the optimum of a short run
# lies a decade higher in lr, 1.5 decades lower in weight decay and at smaller networks
# and batches, and the bias fades only slowly ((1 - z)^2: at a third of a run it is still
# 44% of the way). lr and init scale interact. The example: 3,000 epochs.
LOG6_BEST = {
    "lr": 10**-2.5,
    "weight_decay": 1e-4,
    "width": 160,
    "batch_size": 64,
    "eps": 1e-6,
    "init_scale": 10**-0.5,
}


def _log6(params: dict[str, Any], z: float) -> float:
    b = (1 - z) ** 2
    lr = _dec(params, "lr", LOG6_BEST["lr"]) - 1.0 * b
    wd = _dec(params, "weight_decay", LOG6_BEST["weight_decay"]) + 1.5 * b
    width = _dec(params, "width", LOG6_BEST["width"]) + 0.8 * b
    batch = _dec(params, "batch_size", LOG6_BEST["batch_size"]) + 0.5 * b
    eps = _dec(params, "eps", LOG6_BEST["eps"])
    init = _dec(params, "init_scale", LOG6_BEST["init_scale"])
    return (
        0.15 * lr**2
        + 0.06 * wd**2
        + 0.25 * width**2
        + 0.25 * batch**2
        + 0.01 * eps**2
        + 0.05 * init**2
        + 0.1 * (lr + init) ** 2
        + 1.0 * (1 - z)
    )


def biased_log6(params: dict[str, Any], epochs: int, report: Any) -> float:
    """Six log-scaled parameters, short runs biased; minimum 0 at ``LOG6_BEST``."""
    return _noisy_curve(
        lambda z: _log6(params, z),
        lambda z: 0.01 + 0.4 * (1 - z),
        epochs,
        _full(params, 100),
        report,
    )


def biased_log6_true(params: dict[str, Any]) -> float:
    return _log6(params, 1.0)


# noisy-mixed: float, int and categorical parameters, no bias, but noise that dwarfs the
# differences between settings early on (sd 1.0 after one epoch of 27, 0.46 at a third,
# 0.01 at the end, against a spread of ~0.1 between good settings). The best lr depends
# on the optimizer.
NOISY_LR = {"sgd": 10**-1.3, "adam": 1e-3, "rmsprop": 10**-3.3}
NOISY_OFFSET = {"sgd": 0.05, "adam": 0.0, "rmsprop": 0.03}
NOISY_BEST = {"lr": 1e-3, "optimizer": "adam", "layers": 4, "dropout": 0.2, "batch_size": 64}


def _noisy_mixed(params: dict[str, Any], z: float) -> float:
    opt = str(params["optimizer"])
    return (
        0.1 * _dec(params, "lr", NOISY_LR[opt]) ** 2
        + NOISY_OFFSET[opt]
        + 0.01 * (int(params["layers"]) - 4) ** 2
        + 0.3 * (float(params["dropout"]) - 0.2) ** 2
        + 0.05 * _dec(params, "batch_size", 64) ** 2
        + 0.8 * (1 - z)
    )


def noisy_mixed(params: dict[str, Any], epochs: int, report: Any) -> float:
    """Mixed parameter kinds, noise shrinking from 1.0 to 0.01; minimum 0."""
    return _noisy_curve(
        lambda z: _noisy_mixed(params, z),
        lambda z: 0.01 + 1.0 * (1 - z) ** 2,
        epochs,
        _full(params, 27),
        report,
    )


def noisy_mixed_true(params: dict[str, Any]) -> float:
    return _noisy_mixed(params, 1.0)


# diverging: the effective step lr / (1 - momentum), smaller for large batches and with
# warmup, decides both how good a run is and whether it survives: past STABLE (a quarter of
# the space or so) the loss looks good at first, then turns nan and the objective raises,
# the further past the sooner. Short runs prefer a larger step (0.6 decades more at one
# epoch), right up to the edge; the full-length optimum sits 0.7 decades inside it.
DIVERGE_STABLE = 0.3
DIVERGE_BEST_STEP = -0.4
DIVERGE_BEST = {
    "lr": 10 ** (DIVERGE_BEST_STEP - 1.0),
    "momentum": 0.9,
    "batch_size": 64,
    "warmup": 0,
    "weight_decay": 1e-4,
}


def _step(params: dict[str, Any]) -> float:
    """log10 of the effective step."""
    return (
        math.log10(float(params["lr"]))
        - math.log10(1 - float(params["momentum"]))
        - 0.5 * _dec(params, "batch_size", 64)
        - 0.15 * int(params["warmup"])
    )


def _diverging(params: dict[str, Any], z: float) -> float:
    s = _step(params) - (DIVERGE_BEST_STEP + 0.6 * (1 - z))
    return (
        0.3 * s**2
        + 0.02 * int(params["warmup"])
        + 0.1 * (float(params["momentum"]) - 0.9) ** 2
        + 0.05 * _dec(params, "weight_decay", 1e-4) ** 2
        + 0.02 * _dec(params, "batch_size", 64) ** 2
        + 0.5 * (1 - z)
    )


def diverging_fail_epoch(params: dict[str, Any]) -> int | None:
    past = _step(params) - DIVERGE_STABLE
    return None if past <= 0 else max(2, round(9 - 10 * past))


def diverging(params: dict[str, Any], epochs: int, report: Any) -> float:
    """A corner that diverges (raises mid-run); minimum 0 at ``DIVERGE_BEST``."""
    return _failing_curve(
        lambda z: _diverging(params, z),
        lambda z: 0.01 + 0.4 * (1 - z),
        epochs,
        _full(params, 27),
        report,
        diverging_fail_epoch(params),
    )


#: The true value of a configuration that diverges: worse than nearly every other (regret
#: of a recommendation that fails is large but finite, so medians and ratios stay defined).
DIVERGED_VALUE = 5.0  # about the 95th percentile of the space's full-length values


def diverging_true(params: dict[str, Any]) -> float:
    if diverging_fail_epoch(params) is not None:
        return DIVERGED_VALUE
    return _diverging(params, 1.0)


# plateau: the loss sits at ln(10) (chance) for a stretch whose length depends on the
# learning rate and the init scale (small ones wait longer, up to 70% of the run), then
# falls linearly to its final value within a quarter of the run, so every run has
# converged at the end. The settings that leave the plateau first end worse, and runs
# of a few epochs tie at chance. Large lr with large init returns nan after 3 epochs.
PLATEAU = math.log(10)
PLATEAU_BEST = {"lr": 10**-2.8, "init_scale": 10**-1.5, "width": 256, "label_smoothing": 0.1}


def _plateau_final(params: dict[str, Any]) -> float:
    return (
        0.2 * _dec(params, "lr", PLATEAU_BEST["lr"]) ** 2
        + 0.15 * _dec(params, "init_scale", PLATEAU_BEST["init_scale"]) ** 2
        + 0.05 * _dec(params, "width", 256) ** 2
        + 1.0 * (float(params["label_smoothing"]) - 0.1) ** 2
    )


def _plateau_start(params: dict[str, Any]) -> float:
    lr = math.log10(float(params["lr"]))
    init = math.log10(float(params["init_scale"]))
    return min(max(0.7 - 0.14 * (lr + 5) - 0.1 * (init + 3), 0.0), 0.7)


def _plateau(params: dict[str, Any], z: float) -> float:
    final = _plateau_final(params)
    left = min(max(1 - (z - _plateau_start(params)) / 0.25, 0.0), 1.0)
    return final + (PLATEAU - final) * left


def plateau_fail_epoch(params: dict[str, Any]) -> int | None:
    big = float(params["lr"]) > 10**-1.5 and float(params["init_scale"]) > 0.1
    return 4 if big else None


def plateau(params: dict[str, Any], epochs: int, report: Any) -> float:
    """Plateaus of parameter-dependent length; a corner returns nan; minimum 0."""
    return _failing_curve(
        lambda z: _plateau(params, z),
        lambda z: 0.01 + 0.3 * (1 - z),
        epochs,
        _full(params, 27),
        report,
        plateau_fail_epoch(params),
        how="nan",
    )


def plateau_true(params: dict[str, Any]) -> float:
    """A configuration that fails is worth chance (the plateau)."""
    return PLATEAU if plateau_fail_epoch(params) is not None else _plateau(params, 1.0)


# interacting: five log-scaled parameters whose optimum lies along diagonals: lr with the
# square root of the batch size, weight decay with lr (their product), Adam's 1 - beta2
# with the batch size, and the init scale's effect grows with lr's error. Short runs
# favour a higher lr (0.7 decades at one epoch).
INTERACT_BEST = {
    "lr": 10 ** (-3 + 0.5 * math.log10(4)),
    "batch_size": 256,
    "weight_decay": 10 ** (-6.5 + 3 - 0.5 * math.log10(4)),
    "one_minus_beta2": 10 ** (-2.5 - 0.5 * math.log10(4)),
    "init_scale": 0.1,
}


def _interacting(params: dict[str, Any], z: float) -> float:
    lr = math.log10(float(params["lr"]))
    bs = math.log10(float(params["batch_size"]) / 64)
    a = lr - 0.5 * bs - (-3 + 0.7 * (1 - z))
    b = math.log10(float(params["weight_decay"])) + lr + 6.5
    c = math.log10(float(params["one_minus_beta2"])) + 0.5 * bs + 2.5
    init = _dec(params, "init_scale", 0.1)
    return (
        0.4 * a**2
        + 0.1 * b**2
        + 0.1 * c**2
        + 0.05 * _dec(params, "batch_size", 256) ** 2
        + 0.05 * init**2
        + 0.1 * (a * init) ** 2
        + 0.5 * (1 - z)
    )


def interacting(params: dict[str, Any], epochs: int, report: Any) -> float:
    """Five log-scaled parameters on diagonals; minimum 0 at ``INTERACT_BEST``."""
    return _noisy_curve(
        lambda z: _interacting(params, z),
        lambda z: 0.01 + 0.3 * (1 - z),
        epochs,
        _full(params, 27),
        report,
    )


def interacting_true(params: dict[str, Any]) -> float:
    return _interacting(params, 1.0)


# cat-crossing: the optimizer, activation and normalisation are categorical, depth an
# integer. Each choice has a final offset and a speed (how fast the rest of the loss
# decays, per epoch of 9): Adam is fastest and ends worse than SGD with momentum, tanh
# likewise against GELU, so short runs pick the wrong optimizer and activation. The best
# lr depends on the optimizer. The true value at 9 epochs still carries what is left of
# the decay; the optimum is found by enumerating the choices (lr and depth separable).
CAT_LR = {"sgd": 10**-1.0, "momentum": 10**-1.7, "adam": 10**-3.0, "adamw": 10**-2.8}
CAT_FINAL = {
    "optimizer": {"sgd": 0.12, "momentum": 0.0, "adam": 0.06, "adamw": 0.04},
    "activation": {"relu": 0.02, "gelu": 0.0, "tanh": 0.05},
    "norm": {"none": 0.04, "batch": 0.0, "layer": 0.01},
}
CAT_SPEED = {
    "optimizer": {"sgd": 0.2, "momentum": 0.45, "adam": 1.4, "adamw": 1.1},
    "activation": {"relu": 1.0, "gelu": 0.8, "tanh": 1.4},
    "norm": {"none": 0.8, "batch": 1.2, "layer": 1.0},
}
CAT_EPOCHS = 9


def _cat(params: dict[str, Any], z: float) -> float:
    keys = ("optimizer", "activation", "norm")
    speed = math.prod(CAT_SPEED[k][str(params[k])] for k in keys)
    return (
        sum(CAT_FINAL[k][str(params[k])] for k in keys)
        + 0.3 * _dec(params, "lr", CAT_LR[str(params["optimizer"])]) ** 2
        + 0.01 * (int(params["layers"]) - 5) ** 2
        + 1.5 * math.exp(-speed * z * CAT_EPOCHS)
    )


def cat_crossing(params: dict[str, Any], epochs: int, report: Any) -> float:
    """Categorical learning curves that cross; minimum ``CAT_MIN`` at ``CAT_BEST``."""
    return _noisy_curve(
        lambda z: _cat(params, z),
        lambda z: 0.01 + 0.3 * (1 - z),
        epochs,
        _full(params, CAT_EPOCHS),
        report,
    )


def cat_crossing_true(params: dict[str, Any]) -> float:
    return _cat(params, 1.0)


def _cat_best() -> dict[str, Any]:
    import itertools

    best: dict[str, Any] = {}
    for o, a, n in itertools.product(*(CAT_FINAL[k] for k in ("optimizer", "activation", "norm"))):
        point = {"optimizer": o, "activation": a, "norm": n, "lr": CAT_LR[o], "layers": 5}
        if not best or cat_crossing_true(point) < cat_crossing_true(best):
            best = point
    return best


CAT_BEST = _cat_best()
CAT_MIN = cat_crossing_true(CAT_BEST)


# sparse-10d: ten parameters, of which lr dominates, weight decay and dropout matter (and
# interact), and seven hardly matter (0.002 per squared unit of their range each). Short
# runs favour a higher lr (0.6 decades) and less dropout.
SPARSE_BEST = {
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "dropout": 0.3,
    "beta1": 0.9,
    "eps": 1e-8,
    "warmup": 5,
    "clip": 1.0,
    "width": 256,
    "depth": 4,
    "label_smoothing": 0.1,
}


def _sparse(params: dict[str, Any], z: float) -> float:
    lr = _dec(params, "lr", 1e-3) - 0.6 * (1 - z)
    wd = _dec(params, "weight_decay", 1e-4)
    dr = (float(params["dropout"]) - 0.3 * z) / 0.8
    small = (
        ((float(params["beta1"]) - 0.9) / 0.5) ** 2
        + (_dec(params, "eps", 1e-8) / 6) ** 2
        + ((int(params["warmup"]) - 5) / 20) ** 2
        + (_dec(params, "clip", 1.0) / 4) ** 2
        + (_dec(params, "width", 256) / 1.5) ** 2
        + ((int(params["depth"]) - 4) / 11) ** 2
        + ((float(params["label_smoothing"]) - 0.1) / 0.3) ** 2
    )
    return (
        0.5 * lr**2
        + 0.03 * wd**2
        + 0.3 * dr**2
        + 0.1 * (wd * dr) ** 2
        + 0.002 * small
        + 0.5 * (1 - z)
    )


def sparse_10d(params: dict[str, Any], epochs: int, report: Any) -> float:
    """Ten parameters, three that matter; minimum 0 at ``SPARSE_BEST``."""
    return _noisy_curve(
        lambda z: _sparse(params, z),
        lambda z: 0.01 + 0.3 * (1 - z),
        epochs,
        _full(params, 27),
        report,
    )


def sparse_10d_true(params: dict[str, Any]) -> float:
    return _sparse(params, 1.0)


# two-basin: a broad basin (lr 10^-1.5, weight decay 10^-5) that converges fast and ends at
# 0.15, and a narrow one (lr 10^-3.5, weight decay 10^-2.5, a quarter of a decade wide at
# 0.05 regret) that converges slowly and ends at 0: until about half of a run the broad
# basin looks better everywhere, so short runs point away from the optimum.
TWO_BASIN_BEST = {"lr": 10**-3.5, "weight_decay": 10**-2.5, "momentum": 0.9}


def _two_basin(params: dict[str, Any], z: float) -> float:
    m = 0.05 * (float(params["momentum"]) - 0.9) ** 2
    broad = (
        0.15
        + 0.1 * (_dec(params, "lr", 10**-1.5) ** 2 + _dec(params, "weight_decay", 1e-5) ** 2)
        + 0.6 * (1 - z) ** 3
    )
    narrow = (
        0.8 * (_dec(params, "lr", 10**-3.5) ** 2 + _dec(params, "weight_decay", 10**-2.5) ** 2)
        + 1.2 * (1 - z) ** 0.7
    )
    return m + min(broad, narrow) + 0.3 * (1 - z)


def two_basin(params: dict[str, Any], epochs: int, report: Any) -> float:
    """A broad fast basin against a narrow slow optimum; minimum 0 at ``TWO_BASIN_BEST``."""
    return _noisy_curve(
        lambda z: _two_basin(params, z),
        lambda z: 0.01 + 0.3 * (1 - z),
        epochs,
        _full(params, 27),
        report,
    )


def two_basin_true(params: dict[str, Any]) -> float:
    return _two_basin(params, 1.0)


# digits-mlp: real training, recorded (benchmarks/record_digits_mlp.py: a torch MLP on
# scikit-learn's digits, SGD, 27 epochs at each of 1,024 Sobol points over five
# hyperparameters), replayed by nearest neighbour in the unit cube of the space (each
# parameter in its own scale): a run reports the recorded validation losses of the nearest
# recorded configuration, epoch by epoch, and returns nan where that run diverged. The
# "true" value of a configuration is its nearest neighbour's 27-epoch loss; the optimum is
# the best recorded configuration.
DIGITS_MLP_DATA = Path(__file__).resolve().parent / "data" / "digits_mlp.npz"
DIGITS_MLP_EPOCHS = 27
DIGITS_MLP_SPACE: dict[str, dict[str, Any]] = {
    "lr": {"low": 1e-3, "high": 3.0, "log": True},
    "weight_decay": {"low": 1e-6, "high": 1e-1, "log": True},
    "width": {"low": 16, "high": 512, "log": True},
    "dropout": {"low": 0.0, "high": 0.7, "min": 0.0, "max": 0.9},
    "batch_size": {"low": 16, "high": 512, "log": True},
}


class _Recorded:
    """The recorded curves and their configurations in the unit cube (loaded once)."""

    def __init__(self, path: Path) -> None:
        data = np.load(path)
        self.params = data["params"]
        self.curves = data["curves"].astype(np.float64)
        self.unit = np.stack([self._to_unit(name, self.params[:, j]) for j, name in
                              enumerate(DIGITS_MLP_SPACE)], axis=1)  # fmt: skip
        # a run that diverged is worth chance, ln(10), as in plateau
        final = np.where(np.isfinite(self.curves[:, -1]), self.curves[:, -1], PLATEAU)
        self.best = int(np.argmin(final))
        self.final = final

    @staticmethod
    def _to_unit(name: str, x: Any) -> Any:
        t = DIGITS_MLP_SPACE[name]
        if t.get("log"):
            lo, hi = math.log10(t["low"]), math.log10(t["high"])
            return (np.log10(x) - lo) / (hi - lo)
        return (np.asarray(x, dtype=float) - t["low"]) / (t["high"] - t["low"])

    def nearest(self, params: dict[str, Any]) -> int:
        u = np.array([float(self._to_unit(n, float(params[n]))) for n in DIGITS_MLP_SPACE])
        return int(np.argmin(((self.unit - u) ** 2).sum(axis=1)))

    def config(self, i: int) -> dict[str, Any]:
        row = self.params[i]
        out: dict[str, Any] = {}
        for j, (name, t) in enumerate(DIGITS_MLP_SPACE.items()):
            out[name] = int(row[j]) if isinstance(t["low"], int) else float(row[j])
        return out


_RECORDED: list[_Recorded] = []


def recorded() -> _Recorded:
    if not _RECORDED:
        _RECORDED.append(_Recorded(DIGITS_MLP_DATA))
    return _RECORDED[0]


def digits_mlp(params: dict[str, Any], epochs: int, report: Any) -> float:
    """Replay the nearest recorded run; nan (a failure) from where it diverged."""
    rec = recorded()
    curve = rec.curves[rec.nearest(params)]
    full = _full(params, DIGITS_MLP_EPOCHS)
    value = math.nan
    for e in range(1, epochs + 1):
        i = min(max(round(e * DIGITS_MLP_EPOCHS / full), 1), DIGITS_MLP_EPOCHS) - 1
        value = float(curve[i])
        if not math.isfinite(value):
            return math.nan
        report(e, value)
    return value


def digits_mlp_true(params: dict[str, Any]) -> float:
    rec = recorded()
    return float(rec.final[rec.nearest(params)])


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


def _log(low: float, high: float) -> dict[str, Any]:
    return {"low": low, "high": high, "log": True}


def _lin(low: float, high: float, lo: float | None = None, hi: float | None = None) -> dict:
    return {"low": low, "high": high, **({"min": lo, "max": hi} if lo is not None else {})}


#: Issue 19's new problems (``benchmarks/suite.toml`` lists the suite and its split; with
#: the four above and digits-mlp it has 13). Budgets here are the suite's.
SUITE_PROBLEMS = {
    p.name: p
    for p in (
        Problem(
            "biased-log6",
            "problems:biased_log6",
            {
                "lr": _log(1e-5, 1.0),
                "weight_decay": _log(1e-7, 1e-1),
                "width": {"low": 8, "high": 1024, "log": True},
                "batch_size": {"low": 8, "high": 1024, "log": True},
                "eps": _log(1e-10, 1e-2),
                "init_scale": _log(1e-3, 10.0),
            },
            max_epochs=100,
            full_runs=30,
            true_value=biased_log6_true,
            optimum=0.0,
            optima=(LOG6_BEST,),
        ),
        Problem(
            "noisy-mixed",
            "problems:noisy_mixed",
            {
                "lr": _log(1e-4, 1.0),
                "optimizer": {"choices": ["sgd", "adam", "rmsprop"]},
                "layers": {"low": 1, "high": 8},
                "dropout": _lin(0.0, 0.8, 0.0, 0.9),
                "batch_size": {"low": 16, "high": 512, "log": True},
            },
            max_epochs=27,
            full_runs=30,
            true_value=noisy_mixed_true,
            optimum=0.0,
            optima=(NOISY_BEST,),
        ),
        Problem(
            "diverging",
            "problems:diverging",
            {
                "lr": _log(1e-4, 10.0),
                "momentum": _lin(0.0, 0.99, 0.0, 0.999),
                "batch_size": {"low": 16, "high": 1024, "log": True},
                "warmup": {"low": 0, "high": 10},
                "weight_decay": _log(1e-6, 1e-1),
            },
            max_epochs=27,
            full_runs=30,
            true_value=diverging_true,
            optimum=0.0,
            optima=(DIVERGE_BEST,),
        ),
        Problem(
            "plateau",
            "problems:plateau",
            {
                "lr": _log(1e-5, 1.0),
                "init_scale": _log(1e-3, 1.0),
                "width": {"low": 16, "high": 1024, "log": True},
                "label_smoothing": _lin(0.0, 0.3, 0.0, 0.5),
            },
            max_epochs=27,
            full_runs=30,
            true_value=plateau_true,
            optimum=0.0,
            optima=(PLATEAU_BEST,),
        ),
        Problem(
            "interacting",
            "problems:interacting",
            {
                "lr": _log(1e-5, 1.0),
                "batch_size": {"low": 8, "high": 2048, "log": True},
                "weight_decay": _log(1e-7, 1e-1),
                "one_minus_beta2": _log(1e-4, 1e-1),
                "init_scale": _log(1e-3, 10.0),
            },
            max_epochs=27,
            full_runs=40,
            true_value=interacting_true,
            optimum=0.0,
            optima=(INTERACT_BEST,),
        ),
        Problem(
            "cat-crossing",
            "problems:cat_crossing",
            {
                "optimizer": {"choices": ["sgd", "momentum", "adam", "adamw"]},
                "activation": {"choices": ["relu", "gelu", "tanh"]},
                "norm": {"choices": ["none", "batch", "layer"]},
                "layers": {"low": 1, "high": 8},
                "lr": _log(1e-4, 1.0),
            },
            max_epochs=CAT_EPOCHS,
            full_runs=36,
            true_value=cat_crossing_true,
            optimum=CAT_MIN,
            optima=(CAT_BEST,),
        ),
        Problem(
            "sparse-10d",
            "problems:sparse_10d",
            {
                "lr": _log(1e-5, 1.0),
                "weight_decay": _log(1e-7, 1e-1),
                "dropout": _lin(0.0, 0.8, 0.0, 0.9),
                "beta1": _lin(0.5, 0.999, 0.0, 0.9999),
                "eps": _log(1e-12, 1e-4),
                "warmup": {"low": 0, "high": 20},
                "clip": _log(0.01, 100.0),
                "width": {"low": 32, "high": 1024, "log": True},
                "depth": {"low": 1, "high": 12},
                "label_smoothing": _lin(0.0, 0.3, 0.0, 0.5),
            },
            max_epochs=27,
            full_runs=40,
            true_value=sparse_10d_true,
            optimum=0.0,
            optima=(SPARSE_BEST,),
        ),
        Problem(
            "two-basin",
            "problems:two_basin",
            {
                "lr": _log(1e-5, 1.0),
                "weight_decay": _log(1e-6, 1e-1),
                "momentum": _lin(0.0, 0.99, 0.0, 0.999),
            },
            max_epochs=27,
            full_runs=30,
            true_value=two_basin_true,
            optimum=0.0,
            optima=(TWO_BASIN_BEST,),
        ),
    )
}


def digits_mlp_problem() -> Problem:
    """The recorded problem (its optimum read from the recording, so built on demand)."""
    rec = recorded()
    return Problem(
        "digits-mlp",
        "problems:digits_mlp",
        DIGITS_MLP_SPACE,
        max_epochs=DIGITS_MLP_EPOCHS,
        full_runs=30,
        true_value=digits_mlp_true,
        optimum=float(rec.final[rec.best]),
        optima=(rec.config(rec.best),),
    )


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
