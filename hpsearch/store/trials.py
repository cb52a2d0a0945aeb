"""Trials: a slot claimed for a worker, the counts that progress displays and fail fast
read, and failed trials re-queued for a retry (a stage's trials are read as records by
:class:`~hpsearch.store.reading.SearchReader`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from hpsearch.store.model import Stage, StopEarly
from hpsearch.store.opening import StoreBase
from hpsearch.store.slot import Slot
from hpsearch.store.sql import claims, failures
from hpsearch.store.sql.studies import StageCounts, stage_counts

if TYPE_CHECKING:
    from hpsearch.core.failures import Outcomes
    from hpsearch.core.space import SearchSpace

log = logging.getLogger(__name__)


class Trials(StoreBase):
    """A stage's trials: claimed one at a time, counted."""

    def claim(
        self, stage: Stage, space: SearchSpace, *, worker: str, stop_early: StopEarly | None = None
    ) -> Slot | None:
        """Claim one WAITING slot of the stage for ``worker``, or None if none is left."""
        claim = self._sql("claim slot", claims.claim_slot, stage.study_id, worker=worker)
        return None if claim is None else Slot(self, stage, claim, space, stop_early)

    def open_count(self, stage: Stage) -> int:
        """Slots of the stage still WAITING or RUNNING (zero: the stage is finished)."""
        return self._sql("count open slots", claims.count_open, stage.study_id)

    def stage_counts(self, search: str) -> dict[str, StageCounts]:
        """Per stage of ``search``: slots done, trials running and waiting, the best value
        and recent trial durations (``sql.studies.stage_counts``), for progress displays."""
        return self._sql("read progress", stage_counts, search)

    # -- failures: fail fast and retry ---------------------------------------------------

    def outcomes(self, stage: Stage, window: int) -> Outcomes:
        """The counts fail-fast decides from (``sql.failures.count_outcomes``), read fresh."""
        return self._sql("read outcomes", failures.count_outcomes, stage.study_id, window)

    def requeue_failed(self, stage: Stage) -> list[tuple[int, int]]:
        """Re-queue every failed trial of the stage that counts: one transaction per slot,
        each safe to race (``sql.failures.requeue_failed_trial``). Returns (failed, copy)
        numbers of those this call re-queued."""
        failed = self._sql("find failed", failures.failed_trials, stage.study_id)
        done = []
        for trial_id in failed:
            pair = self._sql("re-queue failed trial", failures.requeue_failed_trial, trial_id)
            if pair is not None:
                done.append(pair)
        if done:
            log.info("%s: re-queued %d failed trial(s)", stage.name, len(done))
        return done
