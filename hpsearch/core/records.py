"""TrialRecord: one trial as the pure core sees it.

The storage layer turns Optuna's FrozenTrial into this plain record, so that region maths,
reports and tests never need Optuna or a database.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

FINISHED_STATES = ("COMPLETE", "FAIL", "PRUNED")


@dataclass(frozen=True)
class TrialRecord:
    """One trial of a stage.

    ``superseded`` marks a trial failed because its worker died, whose slot was re-queued
    as a new trial with the same params: it is history, not part of the stage's budget.
    """

    number: int
    stage: str
    state: str
    params: dict[str, Any]
    value: float | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    intermediate: dict[int, float] = field(default_factory=dict)
    superseded: bool = False
    slot: int | None = None
    epochs: int = 0
    duration_s: float | None = None

    @property
    def diverged(self) -> bool:
        return bool(self.attrs.get("diverged", False))

    @property
    def finished(self) -> bool:
        """Counts towards the stage's budget: done, one way or another, and not re-queued."""
        return self.state in FINISHED_STATES and not self.superseded

    @property
    def ok(self) -> bool:
        """Produced a usable value: complete, finite and not diverged."""
        return (
            self.state == "COMPLETE"
            and not self.diverged
            and self.value is not None
            and math.isfinite(self.value)
        )


def rank(records: list[TrialRecord], direction: str) -> list[TrialRecord]:
    """Finished records best first; diverged and failed trials rank as the worst.

    Ties keep trial-number order, so the ranking is deterministic.
    """
    sign = 1.0 if direction == "minimize" else -1.0
    done = [r for r in records if r.finished]
    return sorted(
        done,
        key=lambda r: (
            (0, sign * r.value, r.number)
            if r.ok and r.value is not None  # (ok: it has a value)
            else (1, 0.0, r.number)
        ),
    )


def ok_values(records: Iterable[TrialRecord]) -> list[float]:
    """The values of the records that gave a usable one (:attr:`TrialRecord.ok`), in order."""
    return [r.value for r in records if r.ok and r.value is not None]


def recommended(records: list[TrialRecord], direction: str) -> TrialRecord | None:
    """The trial a search recommends: by :func:`rank`, the best usable one among the
    longest runs (most epochs). Values after different epochs do not compare: a 1-epoch
    loss that beats every 5-epoch one says nothing about which settings train best for 5,
    and the longest runs are the ones nearest to how the model will be trained. None when
    no trial gave a usable value."""
    usable = [r for r in records if r.ok and r.finished]
    if not usable:
        return None
    longest = max(r.epochs for r in usable)
    return rank([r for r in usable if r.epochs == longest], direction)[0]
