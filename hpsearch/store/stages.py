"""Stages and their slots: a stage study opened with its sampler, prepared under a lease
(its attrs and slots written fenced by it), topped up from its epoch budget, marked
stopped on failures, or deleted to be prepared afresh."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING, Any

from hpsearch.core.errors import UserError
from hpsearch.store.model import (
    ATTR_SPEC,
    ATTR_STOPPED,
    NewSlot,
    Stage,
    StopEarly,
    stage_study_name,
)
from hpsearch.store.opening import StoreBase
from hpsearch.store.sql import budget, studies
from hpsearch.store.sql.leases import Known, Lease, enqueue_slots, set_study_attrs

if TYPE_CHECKING:
    import optuna

    from hpsearch.core.space import SearchSpace
    from hpsearch.core.spec import StudySpec

#: Slots inserted per fenced transaction, at first: short transactions keep the lease row
#: lock brief, and one survives a flaky network. A batch that commits within
#: ``ENQUEUE_QUICK_S`` doubles the next, up to ``ENQUEUE_MAX``; a slow one halves it.
ENQUEUE_BATCH = 100
ENQUEUE_MAX = 5000
ENQUEUE_QUICK_S = 0.1


class StoreLease:
    """A lease whose database calls run under the store's retry policy.

    ``LeaseLost`` (someone took the lease over) is no database error: it passes through.
    """

    def __init__(self, store: StoreBase, lease: Lease) -> None:
        self._store = store
        self.lease = lease

    @property
    def held(self) -> bool:
        return self.lease.token is not None

    def acquire(self) -> bool:
        return self._store._retry(self.lease.acquire, f"acquire lease {self.lease.name}")

    def check(self) -> None:
        self._store._retry(self.lease.check, f"renew lease {self.lease.name}")

    def release(self) -> None:
        self._store._retry(self.lease.release, f"release lease {self.lease.name}")


class Stages(StoreBase):
    """A search's stage studies: opened, prepared, topped up, stopped, discarded."""

    def open_stage(
        self, spec: StudySpec, index: int, sampler: optuna.samplers.BaseSampler | None
    ) -> Stage:
        """Create or load stage ``index``'s study, with the sampler its slots need."""
        return self._open_study(
            stage_study_name(spec.name, spec.stages[index].name), spec, sampler
        )

    def set_metric(self, stage: Stage, metric: str) -> None:
        self._retry(lambda: stage.study.set_metric_names([metric]), "set metric name")

    # -- preparation ---------------------------------------------------------------------

    def lease(self, name: str, *, owner: str, duration_s: float) -> StoreLease:
        """A named, expiring lock with a fencing token (see ``sql.leases.Lease``). Its
        first use in a process creates the lease table, under the policy like any call."""
        lease = self._sql("create lease table", Lease, name, duration_s=duration_s, owner=owner)
        return StoreLease(self, lease)

    def write_stage_attrs(self, stage: Stage, attrs: dict[str, Any], lease: StoreLease) -> None:
        """Write a stage's attrs in one transaction fenced by the preparer's lease."""
        self._sql("write stage attrs", set_study_attrs, stage.study_id, attrs, lease.lease)

    def enqueue(
        self,
        stage: Stage,
        space: SearchSpace,
        new: list[NewSlot],
        lease: StoreLease,
        stop: threading.Event | None = None,
    ) -> int:
        """Add the slots the stage does not have yet, fenced by ``lease``; how many.

        Idempotent: a slot number already in the stage is never inserted again, and each
        batch is one transaction that renews the lease first (``sql.leases.enqueue_slots``).
        ``stop`` set (Ctrl-C, SIGTERM) ends it between two batches: a huge stage stops
        within a batch, and whoever prepares it next inserts only the rest.
        """
        added, i, batch, known = 0, 0, ENQUEUE_BATCH, Known()
        while i < len(new) and not (stop is not None and stop.is_set()):
            part = new[i : i + batch]
            start = time.monotonic()
            added += self._sql(
                "enqueue slots", enqueue_slots, stage.study_id, part, space, lease.lease, known
            )
            i += len(part)
            quick = time.monotonic() - start < ENQUEUE_QUICK_S
            batch = min(batch * 2, ENQUEUE_MAX) if quick else max(batch // 2, ENQUEUE_BATCH)
        return added

    def top_up(self, stage: Stage, stop_early: StopEarly) -> int:
        """Append the slots the stage's unspent epochs buy (``sql.budget.top_up``: one
        transaction under the study's write lock, safe to race); how many."""
        return self._sql("append slots", budget.top_up, stage.study_id, stop_early)

    # -- the stop on failures (fail fast) ------------------------------------------------

    def stopped(self, stage: Stage) -> dict[str, Any] | None:
        """The stage's stop mark, or None: every worker reads it before each claim."""
        mark: dict[str, Any] | None = self._sql(
            "read stop mark", studies.study_attr, stage.study_id, ATTR_STOPPED
        )
        return mark

    def stop(self, stage: Stage, info: dict[str, Any]) -> bool:
        """Mark the stage stopped, once: True if this call wrote the mark (insert-if-absent,
        so of workers deciding at once one wins and the mark says what it saw)."""
        return self._sql("stop", studies.add_study_attr, stage.study_id, ATTR_STOPPED, info)

    def clear_stop(self, stage: Stage) -> None:
        self._sql("clear stop", studies.delete_study_attr, stage.study_id, ATTR_STOPPED)

    # -- discarding ----------------------------------------------------------------------

    def delete_stage(self, stage: Stage) -> None:
        """Delete a stage study with all its trials, attrs and notes, in one transaction
        (Optuna's ``delete_study``), so that the stage is prepared afresh. The first stage
        holds the search's spec and is never deleted this way."""
        if ATTR_SPEC in self.stage_attrs(stage):
            raise UserError(f"{stage.name} holds the search's spec; it cannot be discarded")

        def delete() -> None:
            # KeyError: gone already (a delete that committed before its connection dropped)
            with contextlib.suppress(KeyError):
                self._rdb.delete_study(stage.study_id)

        self._retry(delete, f"delete {stage.name}")
