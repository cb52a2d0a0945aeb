"""Liveness: whose worker is still there, judged by heartbeats (a claimed trial beats while
it runs, see :meth:`hpsearch.store.slot.Slot.heartbeat`), and trials whose worker is gone
failed and re-queued."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

from hpsearch.store.model import Stage
from hpsearch.store.opening import StoreBase
from hpsearch.store.sql import workers
from hpsearch.store.sql.claims import count_live, requeue_trial, stale_trials

log = logging.getLogger(__name__)


class Liveness(StoreBase):
    """Heartbeats: a stage's live trials counted, lost ones recovered, a worker's own
    row beating (the search's live trials and workers are read by ``SearchReader``)."""

    def recover(self, stage: Stage, grace_period: float, *, max_retry: int) -> int:
        """Fail trials whose worker is gone and re-queue their slots (same params).

        Covers trials whose heartbeat stopped and trials that never got a heartbeat row
        (which Optuna's stale check skips). Not Optuna's ``fail_stale_trials``: on SQLite
        it lets several workers recovering at once each re-queue the same slot (see
        ``sql.claims.requeue_trial``). Returns how many slots this call re-queued.
        """
        stale = self._sql("find stale", stale_trials, stage.study_id, grace_period)
        reason = f"worker lost (no heartbeat for {grace_period:g} s)"
        requeued = 0
        for trial_id in stale:
            copy = self._sql(
                "re-queue slot", requeue_trial, trial_id, reason=reason, max_retry=max_retry
            )
            requeued += copy is not None
        return requeued

    def live_count(self, stage: Stage, grace_period: float) -> int:
        """Trials of the stage running under a worker that is presumed alive."""
        return self._sql("count running", count_live, stage.study_id, grace_period)

    @contextlib.contextmanager
    def attached(self, search: str, worker: str, interval: float) -> Iterator[bool]:
        """Keep ``worker``'s row on ``search`` beating every ``interval`` seconds while the
        block runs (preparing, claiming, running, waiting at a barrier), so that a delete
        sees the worker whatever it is doing; the row goes when the block ends. Yields
        False (and beats nothing) if the search is gone already."""
        if not self._sql("attach worker", workers.attach, search, worker):
            yield False
            return
        stop = threading.Event()
        engine = self._rdb.engine

        def beat() -> None:
            while not stop.wait(interval):
                try:
                    workers.beat(engine, search, worker)
                except Exception as exc:  # the database is away; the next beat retries
                    log.warning("worker heartbeat failed: %s", type(exc).__name__)

        thread = threading.Thread(target=beat, daemon=True, name="hpsearch-worker-beat")
        thread.start()
        try:
            yield True
        finally:
            stop.set()
            thread.join()
            try:
                workers.detach(engine, search, worker)
            except Exception as exc:  # its beat goes stale instead
                log.warning("could not detach worker: %s", type(exc).__name__)
