"""Learning curves of one trial, from whatever the objective recorded.

The built-in CNN records per-epoch curves as user attrs (``curve_train_loss`` ...); a plain
objective only calls ``report(epoch, value)``, which Optuna keeps as intermediate values.
Reports and warnings read curves through this one function so that both kinds of search
get learning curves, and neither needs Optuna.
"""

from __future__ import annotations

import math

from hpsearch.core.records import TrialRecord

#: The CNN's per-epoch curves, by the name reports show them under.
CURVE_ATTRS = {
    "train loss": "curve_train_loss",
    "val loss": "curve_val_loss",
    "train accuracy": "curve_train_accuracy",
    "val accuracy": "curve_val_accuracy",
}
#: The name of the curve made of the intermediate values ``report(epoch, value)`` sent.
REPORTED = "reported"


def trial_curves(r: TrialRecord) -> dict[str, list[float]]:
    """Named per-epoch curves of ``r``: the recorded ones, else the reported values.

    Non-finite points are dropped (a diverged run's last value is no curve point).
    """
    out: dict[str, list[float]] = {}
    for name, attr in CURVE_ATTRS.items():
        values = r.attrs.get(attr)
        if isinstance(values, list) and values:
            out[name] = [float(v) for v in values if _finite(v)]
    if not out and r.intermediate:
        out[REPORTED] = [float(r.intermediate[k]) for k in sorted(r.intermediate)]
        out[REPORTED] = [v for v in out[REPORTED] if math.isfinite(v)]
    return {k: v for k, v in out.items() if v}


def loss_curve(r: TrialRecord, direction: str) -> list[float] | None:
    """The curve whose fall means learning: the training loss if recorded, else the reported
    values of a minimized metric. None when neither exists (a maximized metric's reported
    values are accuracies or rewards; their shape says nothing about a loss plateau)."""
    curves = trial_curves(r)
    if "train loss" in curves:
        return curves["train loss"]
    if REPORTED in curves and direction == "minimize":
        return curves[REPORTED]
    return None


def _finite(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
