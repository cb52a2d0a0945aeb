"""Your own objective, in numpy alone: a linear model trained by minibatch SGD.

custom_objective.toml names it (objective = "my_objective:fit"); hpsearch finds this file
because it lies beside the study file. Any function with this signature plugs in:
``fit(params, epochs, report) -> float``, calling ``report(epoch, value)`` after each epoch
(learning curves; early stopping decides there) and returning the metric.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A fixed regression problem (the same for every trial): 20 features, 6 that matter."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(600, 20))
    w = rng.normal(size=20) * (np.arange(20) < 6)
    y = x @ w + 0.5 * rng.normal(size=600)
    return x[:400], y[:400], x[400:], y[400:]


def fit(params: dict[str, Any], epochs: int, report: Any) -> float:
    """Validation mean squared error after ``epochs`` passes over the training split."""
    x, y, x_val, y_val = _data()
    rng = np.random.default_rng(report.seed)  # the trial's seed: shuffling
    lr, decay, batch = params["lr"], params["weight_decay"], int(params["batch_size"])
    w = np.zeros(x.shape[1])
    val_mse = float("inf")
    with np.errstate(over="ignore", invalid="ignore"):
        for epoch in range(1, epochs + 1):
            order = rng.permutation(len(x))
            for i in range(0, len(x), batch):
                b = order[i : i + batch]
                w = w - lr * (x[b].T @ (x[b] @ w - y[b]) / len(b) + decay * w)
            val_mse = float(np.mean((x_val @ w - y_val) ** 2))
            if not np.isfinite(val_mse) or val_mse > 1e6:  # lr too large: it diverged
                report.log(diverged=True, diverged_reason=f"val_mse blew up at epoch {epoch}")
                return 1e6
            report(epoch, val_mse)
    report.log(train_mse=float(np.mean((x @ w - y) ** 2)))  # any JSON values: trial attrs
    return val_mse
