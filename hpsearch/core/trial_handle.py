"""The ``report`` handle an objective receives: per-epoch values, trial attrs, seed.

An objective is ``fn(params: dict, epochs: int, report) -> float``. Plain user functions
only ever call ``report(epoch, value)``; the built-in CNN also reads ``report.seed`` and
``report.threads`` and records diagnostics with ``report.log(...)``. Keeping this object
free of Optuna lets objectives be unit-tested with :meth:`Reporter.recording` and keeps the
worker (which wires it to storage) apart from the training code.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

#: The key ``hpsearch best --retrain --save PATH`` adds to the objective's params, and only
#: there: an objective that sees it writes the trained model to ``params["save_path"]``
#: (the built-in CNN does). Trials of a search never get it, so they keep no weights.
SAVE_PATH_KEY = "save_path"


class TrialLost(RuntimeError):
    """The trial was finished by someone else (e.g. failed as stale) while it ran.

    Raised from ``report(...)`` so that training stops at the next epoch instead of
    finishing work whose result can no longer be recorded. The worker catches it, drops the
    result quietly and moves on.
    """


class TrialStopped(Exception):
    """The stage's early-stopping rule stopped the trial: its value so far is losing.

    Raised from ``report(...)`` (as ``optuna.TrialPruned`` is raised from a trial) so that
    training stops there; an objective lets it propagate. The worker records the trial as
    stopped (PRUNED, with the epochs it ran and its curve); ``attrs`` are the trial attrs
    the objective had logged by then.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.attrs: dict[str, Any] = {}


class Reporter:
    """Callable per-epoch sink handed to objectives.

    Args:
        seed: The trial's seed, derived from (search seed, stage, slot). Objectives should
            seed every random thing from it so that the same params and seed give the same
            result.
        threads: CPU threads this worker may use (the machine's cores split across local
            workers).
        on_value: Called with ``(epoch, value)`` for each reported epoch.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"`` (``--device``);
            a hint for objectives that train.
    """

    def __init__(
        self,
        *,
        seed: int,
        threads: int = 1,
        on_value: Callable[[int, float], None] | None = None,
        device: str = "auto",
    ) -> None:
        self.seed = seed
        self.threads = threads
        self.device = device
        self._on_value = on_value
        self.values: dict[int, float] = {}
        self.attrs: dict[str, Any] = {}

    @classmethod
    def recording(cls, seed: int = 0, threads: int = 1) -> Reporter:
        """A reporter that only records in memory (``.values``, ``.attrs``): for tests."""
        return cls(seed=seed, threads=threads)

    def __call__(self, epoch: int, value: float) -> None:
        """Record the metric after ``epoch`` (1-based). Non-finite values are kept out of
        storage: a NaN intermediate value has made SQLite studies unreadable for the
        dashboard, so they are recorded as attrs by the objective instead."""
        try:
            value = float(value)
        except OverflowError:
            raise ValueError(
                f"report({epoch!r}, value): the value is a number no float holds "
                f"({len(str(abs(int(value))))} digits); report the metric as a float"
            ) from None
        try:
            epoch = int(epoch)
        except (OverflowError, ValueError, TypeError):
            raise ValueError(
                f"report(epoch, value): epoch must be an integer, got {epoch!r}"
            ) from None
        self.values[epoch] = value
        if self._on_value is not None and math.isfinite(value):
            self._on_value(epoch, value)

    def log(self, **attrs: Any) -> None:
        """Record trial attributes (numbers, strings, bools or lists of them); the worker
        stores them with the trial's result."""
        self.attrs.update(attrs)
