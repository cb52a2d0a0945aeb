"""Trials: a slot claimed for a worker, a stage's trials read as records, the counts that
progress displays and fail fast read, and failed trials re-queued for a retry."""

from __future__ import annotations

import logging
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from hpsearch.core.records import TrialRecord
from hpsearch.store.model import Stage, StopEarly
from hpsearch.store.opening import StoreBase
from hpsearch.store.slot import Slot
from hpsearch.store.sql import claims, failures
from hpsearch.store.sql.studies import StageCounts, stage_counts

if TYPE_CHECKING:
    from hpsearch.core.failures import Outcomes
    from hpsearch.core.space import SearchSpace

log = logging.getLogger(__name__)

#: Trials per query when a whole stage is read (see :meth:`Trials.records`): 30 ms a
#: query on an idle machine. 500 took 130 ms, several times that on a loaded one, and
#: with connections dropped every 0.1 s no attempt got through in 120 s.
READ_BATCH = 100


class Trials(StoreBase):
    """A stage's trials: claimed one at a time, read whole, counted."""

    def claim(
        self, stage: Stage, space: SearchSpace, *, worker: str, stop_early: StopEarly | None = None
    ) -> Slot | None:
        """Claim one WAITING slot of the stage for ``worker``, or None if none is left."""
        claim = self._sql("claim slot", claims.claim_slot, stage.study_id, worker=worker)
        return None if claim is None else Slot(self, stage, claim, space, stop_early)

    def records(self, stage: Stage, stage_name: str) -> list[TrialRecord]:
        """All trials of a stage as records, re-queued ones marked ``superseded``.

        Read from the database each time, past Optuna's per-process trial cache: a worker
        that read a 5,000-trial stage through the cache kept every trial in memory. Read
        ``READ_BATCH`` trials per query, each query retried on its own: Optuna's ORM builds
        every row of a query at once (93 MB at its peak for 5,000 trials, which the
        worker's heap then kept), and a long query never completes while connections drop.
        """
        ids = self._sql("list trials", claims.trial_ids, stage.study_id)
        records, retried = [], set()
        for i in range(0, len(ids), READ_BATCH):
            batch = set(ids[i : i + READ_BATCH])
            # Optuna's one paged read (its cache's): the trials listed, plus every trial
            # after the id given; after the last id listed there are none or new ones,
            # which are not this read's.
            read = partial(self._rdb._get_trials, stage.study_id, None, batch, ids[-1])
            trials = self._retry(read, "read trials")
            for t in trials:
                if t._trial_id in batch:
                    retried.update(t.system_attrs.get("retry_history", []))
                    records.append(_to_record(t, stage_name))
        return [replace(r, superseded=True) if r.number in retried else r for r in records]

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


def _to_record(t: Any, stage: str) -> TrialRecord:
    """FrozenTrial -> the pure core's TrialRecord."""
    duration = None
    if t.datetime_start is not None and t.datetime_complete is not None:
        duration = (t.datetime_complete - t.datetime_start).total_seconds()
    return TrialRecord(
        number=t.number,
        stage=stage,
        state=t.state.name,
        params=dict(t.params) if t.params else dict(t.system_attrs.get("fixed_params", {})),
        value=t.value if t.state.name == "COMPLETE" else None,
        attrs=dict(t.user_attrs),
        intermediate=dict(t.intermediate_values),
        slot=t.user_attrs.get("slot"),
        epochs=int(t.user_attrs.get("epochs", 0)),
        duration_s=duration,
    )
