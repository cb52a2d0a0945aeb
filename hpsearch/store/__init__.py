"""The storage boundary: every read and write of a search's database goes through here.
May import: core, training, objectives.

The database is the only source of truth: a search's spec, each stage's space and the
region that produced it live in stage studies' user attrs, so any worker on any machine
(and optuna-dashboard) sees the whole search from the storage URL alone.

The worker loop, stage preparation, notes and reports talk to :class:`SearchStore` in the
words of the design (register, stage, prepare, claim, record, recover, note) and never to
SQLAlchemy or to Optuna's internals, which are used only in this package:

- ``policy``: the one retry policy (which errors are transient, which are permanent);
- ``slots``: the raw SQL of claims, re-queues, fenced enqueues and leases;
- this module: Optuna's storage, the store, and the :class:`Slot` a worker runs.

Every public method of the store runs under the retry policy: a transient error (a
dropped connection, a restart, a lock) is retried with backoff; a permanent one fails at
once with one line naming the fix.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from hpsearch.core.records import TrialRecord
from hpsearch.core.space import SearchSpace
from hpsearch.core.spec import StudySpec
from hpsearch.core.trial_handle import TrialLost, TrialStopped
from hpsearch.objectives.catalog import spec_from_dict
from hpsearch.store import policy
from hpsearch.store.policy import StorageBroken, StorageUnusable
from hpsearch.store.urls import mask_text, mask_url, sqlite_path

if TYPE_CHECKING:
    import optuna
    from optuna.storages import RDBStorage

    from hpsearch.core.failures import Outcomes
    from hpsearch.store import slots as slots_module
    from hpsearch.store.slots import Claim, Lease

__all__ = [
    "SearchStore",
    "Slot",
    "Stage",
    "StopEarly",
    "StorageBroken",
    "StorageUnusable",
    "stage_study_name",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

# Study user attrs (the dashboard shows them; keep the names plain).
ATTR_SPEC = "spec"  # on the first stage study only: the whole search
ATTR_HISTORY = "spec_history"  # beside it: every spec it has been, with times and changes
ATTR_STAGE = "stage"
ATTR_STAGE_INDEX = "stage_index"
ATTR_EPOCHS = "epochs"
ATTR_SAMPLER = "sampler"
ATTR_SEED = "seed"
ATTR_SPACE = "space"
ATTR_REGION = "region"
ATTR_POINTS = "n_points"
ATTR_PROMOTED = "n_promoted"  # the first slots: the previous stage's best trials again
ATTR_READY = "ready"
ATTR_BASELINE = "baseline"  # on a compare baseline's study: "grid" or "random"
ATTR_STOPPED = "stopped"  # on a stage study whose failures stopped the search (failfast)
#: Study system attrs: optuna-dashboard's note version, and hpsearch's mark of its own.
NOTE_VERSION = "dashboard:note_ver"
ATTR_NOTE_MARK = "hpsearch:note"

#: How long a worker, and every read the run of one makes (its spec, whether it stopped),
#: waits for an unreachable database: long enough to outlive a server restart. One-shot
#: commands give up sooner (``cli.COMMAND_WAIT_S``).
WORKER_WAIT_S = 120.0
#: PostgreSQL session limits, so that a frozen process (SIGSTOP, a swapped-out VM) cannot
#: hold row locks for the whole freeze and block every other worker: the server ends a
#: session idle inside a transaction after this long, and a statement waiting for a lock
#: gives up (a transient error, retried) instead of queueing behind it forever.
IDLE_IN_TRANSACTION_MS = 30_000
LOCK_TIMEOUT_MS = 15_000
#: Slots inserted per fenced transaction: short transactions keep the lease row lock brief.
ENQUEUE_BATCH = 100
#: Trials per query when a whole stage is read (see :meth:`SearchStore.records`): 30 ms
#: a query on an idle machine. 500 took 130 ms, several times that on a loaded one, and
#: with connections dropped every 0.1 s no attempt got through in 120 s.
READ_BATCH = 100


def stage_study_name(search: str, stage: str) -> str:
    return f"{search}/{stage}"


def engine_kwargs(url: str) -> dict[str, Any]:
    """Engine options that Optuna leaves off (``network.engine_kwargs``): ``pool_pre_ping``,
    SQLite's busy timeout, and on PostgreSQL the session timeouts above, the network
    limits and the two-connection pool."""
    from hpsearch.store import network

    return network.engine_kwargs(
        url, idle_in_transaction_ms=IDLE_IN_TRANSACTION_MS, lock_timeout_ms=LOCK_TIMEOUT_MS
    )


@dataclass(frozen=True)
class Stage:
    """A stage study, as the store hands it out: the worker and the preparer name a stage
    by this handle and never see the Optuna study inside."""

    name: str  # the study name, NAME/STAGE
    study_id: int
    study: optuna.Study = field(repr=False, compare=False)


@dataclass(frozen=True)
class NoteState:
    """A stage note's version (optuna-dashboard counts one per save, a person's in the
    dashboard included; 0: no note) and hpsearch's mark of the version it wrote last, with
    the stage's trial count it was drawn from (None: hpsearch never wrote one)."""

    version: int
    ours: int | None
    trials: int | None

    @property
    def by_a_person(self) -> bool:
        """A note that hpsearch did not write, or edited since: never overwritten."""
        return self.version > 0 and self.version != self.ours


@dataclass(frozen=True)
class NewSlot:
    """A slot for :meth:`SearchStore.enqueue`: its number, point (empty: the sampler fills
    it at run time) and the attrs that identify it."""

    slot: int
    point: dict[str, Any]
    user_attrs: dict[str, Any]


@dataclass(frozen=True)
class StopEarly:
    """How a stage stops runs early: Optuna's pruner, which decides after each reported
    epoch, and the stage's epoch budget with the slots its unspent epochs buy.

    ``more(first, n)`` is the stage's next ``n`` slots from slot number ``first`` on, a
    pure function (``stages.stop_early``), so whichever worker appends them, they are the
    same; ``space`` gives their points' distributions.
    """

    pruner: optuna.pruners.BasePruner = field(repr=False)
    budget: int
    epochs: int
    space: SearchSpace
    more: Callable[[int, int], list[NewSlot]] = field(repr=False)


class SearchStore:
    """One search database: Optuna's storage, hpsearch's coordination rows, one policy."""

    def __init__(self, url: str, storage: RDBStorage, *, wait_s: float, readonly: bool) -> None:
        self.url = url
        self.readonly = readonly
        self._rdb = storage
        self._wait_s = wait_s

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def open(
        cls, url: str, *, wait_s: float = WORKER_WAIT_S, readonly: bool = False
    ) -> SearchStore:
        """Open the database at ``url``.

        ``readonly`` is for commands that only look (status, report, best, list, the
        dashboard): they never create a database (a missing SQLite file is an error that
        names it, not a new empty file), and a read-only SQLite file is opened read-only.
        A worker waits up to ``wait_s`` for a database that is restarting.
        """
        import warnings

        import optuna
        from optuna.storages import RDBStorage

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        path = sqlite_path(url)
        open_url = url
        if path is not None:
            open_url = _check_sqlite_file(url, path, readonly)
        store = cls(url, None, wait_s=wait_s, readonly=readonly)  # type: ignore[arg-type]

        def create() -> RDBStorage:
            from hpsearch.store.network import shared_storage

            return shared_storage(  # one per process and PostgreSQL URL: 2 connections
                url,
                lambda: RDBStorage(
                    open_url, engine_kwargs=engine_kwargs(url), skip_table_creation=readonly
                ),
                readonly=readonly,
            )

        for attempt in range(20):
            try:
                store._rdb = store._retry(create, f"open storage {mask_url(url)}")
                break
            except StorageBroken as exc:
                from sqlalchemy import exc as sa_exc

                # Processes opening a fresh database together race to create Optuna's
                # schema (PostgreSQL: duplicate enum types; SQLite: the version stamp).
                # The loser retries once the winner is done, and then finds it there.
                race = isinstance(exc.__cause__, sa_exc.IntegrityError | sa_exc.ProgrammingError)
                if not race or attempt == 19:
                    raise
                time.sleep(0.25)
        if path is not None and not readonly and path.exists():
            # WAL lets readers (status, report, the dashboard) run while workers write. It
            # is safe on a local disk, which is where an embedded SQLite database belongs.
            def wal() -> None:
                with store._rdb.engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA journal_mode=WAL")

            store._retry(wal, "set WAL mode")
        return store

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    def dashboard_storage(self) -> RDBStorage:
        """The Optuna storage, for optuna-dashboard's WSGI app (which needs one)."""
        return self._rdb

    # -- the policy ----------------------------------------------------------------------

    def _retry(self, fn: Callable[[], T], what: str) -> T:
        return policy.with_retries(
            fn, what=what, deadline_s=self._wait_s, on_permanent=self._permanent
        )

    def _permanent(self, exc: BaseException, kind: str) -> BaseException:
        """One line for a permanent error: the masked URL, what went wrong, the fix."""
        if isinstance(exc, StorageUnusable | StorageBroken):
            return exc
        why = mask_text(policy.reason(exc), self.url)
        where = f"--storage {self.masked_url}"
        if kind == "broken":
            return StorageBroken(
                f"{where}: the database is damaged ({why}); restore it from a backup"
            )
        text = why.lower()
        path = sqlite_path(self.url)
        if "unable to open" in text and path is not None:
            fix = f"cannot open the SQLite file {path} ({why}); check its folder's permissions"
        elif "not a database" in text:
            fix = f"{path} is not an SQLite database; pass the file the search was launched on"
        elif "readonly" in text or "read-only" in text:
            fix = (
                f"{path} is read-only ({why}); make it writable to run workers "
                "(status, report, best and the dashboard only read it)"
            )
        elif "does not exist" in text:
            fix = f"{why}; create it (e.g. createdb) or fix the URL"
        elif "authentication" in text or "password" in text:
            fix = f"{why}; check the user and password (best given in $HPSEARCH_STORAGE)"
        else:
            fix = why
        return StorageUnusable(f"{where}: {fix}")

    # -- searches ------------------------------------------------------------------------

    def _studies(self) -> list[optuna.study.StudySummary]:
        return self._retry(self._rdb.get_all_studies, "list studies")

    def find_spec(self, search: str) -> StudySpec | None:
        """The spec stored for ``search`` (on its first stage study), or None if unknown.

        A compare baseline (``hpsearch compare``) is a one-stage search stored beside the
        search it compares with, as ``NAME/grid-baseline``, with a ``baseline`` attr; it is
        addressed by that full study name and never found under ``NAME`` alone.
        """
        for study in self._studies():
            attrs = study.user_attrs
            if ATTR_SPEC not in attrs:
                continue
            if "/" in search:
                found = study.study_name == search and ATTR_BASELINE in attrs
            else:
                found = study.study_name.startswith(search + "/") and ATTR_BASELINE not in attrs
            if found:
                data = attrs[ATTR_SPEC]
                return spec_from_dict(data["spec"], base_dir=data.get("base_dir", "."))
        return None

    def search_names(self) -> list[str]:
        """Names of all searches in the storage (compare baselines are not searches)."""
        return sorted(
            s.study_name.split("/", 1)[0]
            for s in self._studies()
            if "/" in s.study_name
            and ATTR_SPEC in s.user_attrs
            and ATTR_BASELINE not in s.user_attrs
        )

    def baselines(self, search: str) -> dict[str, str]:
        """The ``hpsearch compare`` baselines stored beside ``search``: method -> key."""
        return {
            str(s.user_attrs[ATTR_BASELINE]): s.study_name
            for s in self._studies()
            if s.user_attrs.get(ATTR_BASELINE)
            and s.study_name.startswith(search + "/")
            and ATTR_SPEC in s.user_attrs
        }

    def register(self, spec: StudySpec, *, baseline: str | None = None) -> dict[str, Any] | None:
        """Store ``spec`` on its first stage study unless a spec is there already.

        Returns None if this call stored it (the search is new), else the stored spec's
        dict for the caller to compare. Atomic: two launches racing with different specs
        cannot both win (the attr is inserted if absent, in one statement). A baseline's
        ``baseline`` attr is written before its spec, so that no reader ever sees a
        baseline's spec without it.
        """
        from hpsearch.store import slots

        stage = self._open_study(stage_study_name(spec.name, spec.stages[0].name), spec, None)
        engine = self._rdb.engine
        if baseline is not None:
            self._retry(
                lambda: slots.add_study_attr(engine, stage.study_id, ATTR_BASELINE, baseline),
                "mark baseline",
            )
        value = {"spec": spec.to_dict(), "base_dir": spec.base_dir, "at": now_iso()}
        if self._retry(
            lambda: slots.add_study_attr(engine, stage.study_id, ATTR_SPEC, value), "store spec"
        ):
            return None
        return self.stage_attrs(stage)[ATTR_SPEC]

    # -- stages --------------------------------------------------------------------------

    def open_stage(
        self, spec: StudySpec, index: int, sampler: optuna.samplers.BaseSampler | None
    ) -> Stage:
        """Create or load stage ``index``'s study, with the sampler its slots need."""
        return self._open_study(
            stage_study_name(spec.name, spec.stages[index].name), spec, sampler
        )

    def _open_study(
        self, name: str, spec: StudySpec, sampler: optuna.samplers.BaseSampler | None
    ) -> Stage:
        import optuna

        study = self._retry(
            lambda: optuna.create_study(
                storage=self._rdb,
                study_name=name,
                direction=spec.direction,
                sampler=sampler,
                load_if_exists=True,
            ),
            f"open study {name}",
        )
        return Stage(name, self._retry(lambda: study._study_id, "study id"), study)

    def find_stage(self, search: str, stage: str) -> Stage | None:
        """The stage study, or None if that stage has not been created yet."""
        import optuna

        name = stage_study_name(search, stage)

        def load() -> optuna.Study | None:
            try:
                return optuna.load_study(study_name=name, storage=self._rdb)
            except KeyError:
                return None

        study = self._retry(load, f"load study {name}")
        return None if study is None else Stage(name, study._study_id, study)

    def stage_attrs(self, stage: Stage) -> dict[str, Any]:
        return self._retry(lambda: self._rdb.get_study_user_attrs(stage.study_id), "read attrs")

    def write_stage_attrs(self, stage: Stage, attrs: dict[str, Any], lease: StoreLease) -> None:
        """Write a stage's attrs in one transaction fenced by the preparer's lease."""
        from hpsearch.store import slots

        engine = self._rdb.engine
        self._retry(
            lambda: slots.set_study_attrs(engine, stage.study_id, attrs, lease.lease),
            "write stage attrs",
        )

    def set_metric(self, stage: Stage, metric: str) -> None:
        self._retry(lambda: stage.study.set_metric_names([metric]), "set metric name")

    def records(self, stage: Stage, stage_name: str) -> list[TrialRecord]:
        """All trials of a stage as records, re-queued ones marked ``superseded``.

        Read from the database each time, past Optuna's per-process trial cache: a worker
        that read a 5,000-trial stage through the cache kept every trial in memory. Read
        ``READ_BATCH`` trials per query, each query retried on its own: Optuna's ORM builds
        every row of a query at once (93 MB at its peak for 5,000 trials, which the
        worker's heap then kept), and a long query never completes while connections drop.
        """
        from dataclasses import replace

        from hpsearch.store import slots

        engine = self._rdb.engine
        ids = self._retry(lambda: slots.trial_ids(engine, stage.study_id), "list trials")
        records, retried = [], set()
        for i in range(0, len(ids), READ_BATCH):
            batch = set(ids[i : i + READ_BATCH])
            # Optuna's one paged read (its cache's): the trials listed, plus every trial
            # after the id given; after the last id listed there are none or new ones,
            # which are not this read's.
            trials = self._retry(
                lambda b=batch: self._rdb._get_trials(stage.study_id, None, b, ids[-1]),
                "read trials",
            )
            for t in trials:
                if t._trial_id in batch:
                    retried.update(t.system_attrs.get("retry_history", []))
                    records.append(_to_record(t, stage_name))
        return [replace(r, superseded=True) if r.number in retried else r for r in records]

    def open_count(self, stage: Stage) -> int:
        """Slots of the stage still WAITING or RUNNING (zero: the stage is finished)."""
        from hpsearch.store import slots

        engine = self._rdb.engine
        return self._retry(lambda: slots.count_open(engine, stage.study_id), "count open slots")

    def stage_counts(self, search: str) -> dict[str, slots_module.StageCounts]:
        """Per stage of ``search``: slots done, trials running and waiting, the best value
        and recent trial durations (``slots.stage_counts``), for progress displays."""
        from hpsearch.store import slots

        engine = self._rdb.engine
        return self._retry(lambda: slots.stage_counts(engine, search), "read progress")

    # -- preparation ---------------------------------------------------------------------

    def lease(self, name: str, *, owner: str, duration_s: float) -> StoreLease:
        """A named, expiring lock with a fencing token (see ``slots.Lease``). Its first
        use in a process creates the lease table, under the policy like any other call."""
        from hpsearch.store.slots import Lease

        engine = self._rdb.engine
        lease = self._retry(
            lambda: Lease(engine, name, duration_s=duration_s, owner=owner), "create lease table"
        )
        return StoreLease(self, lease)

    def enqueue(
        self, stage: Stage, space: SearchSpace, new: list[NewSlot], lease: StoreLease
    ) -> int:
        """Add the slots the stage does not have yet, fenced by ``lease``; how many.

        Idempotent: a slot number already in the stage is never inserted again, and each
        batch is one transaction that renews the lease first (``slots.enqueue_slots``).
        """
        from hpsearch.store import slots

        engine = self._rdb.engine
        batch = [
            slots.NewSlot(
                s.slot, s.point, {n: space[n].to_distribution() for n in s.point}, s.user_attrs
            )
            for s in new
        ]
        added = 0
        for i in range(0, len(batch), ENQUEUE_BATCH):
            part = batch[i : i + ENQUEUE_BATCH]
            added += self._retry(
                lambda p=part: slots.enqueue_slots(engine, stage.study_id, p, lease.lease),
                "enqueue slots",
            )
        return added

    # -- running -------------------------------------------------------------------------

    def claim(
        self, stage: Stage, space: SearchSpace, *, worker: str, stop_early: StopEarly | None = None
    ) -> Slot | None:
        """Claim one WAITING slot of the stage for ``worker``, or None if none is left."""
        from hpsearch.store import slots

        engine = self._rdb.engine
        claim = self._retry(
            lambda: slots.claim_slot(engine, stage.study_id, worker=worker), "claim slot"
        )
        return None if claim is None else Slot(self, stage, claim, space, stop_early)

    def recover(self, stage: Stage, grace_period: float, *, max_retry: int) -> int:
        """Fail trials whose worker is gone and re-queue their slots (same params).

        Covers trials whose heartbeat stopped and trials that never got a heartbeat row
        (which Optuna's stale check skips). Not Optuna's ``fail_stale_trials``: on SQLite
        it lets several workers recovering at once each re-queue the same slot (see
        ``slots.requeue_trial``). Returns how many slots this call re-queued.
        """
        from hpsearch.store import slots

        engine = self._rdb.engine
        stale = self._retry(
            lambda: slots.stale_trials(engine, stage.study_id, grace_period), "find stale"
        )
        reason = f"worker lost (no heartbeat for {grace_period:g} s)"
        requeued = 0
        for trial_id in stale:
            copy = self._retry(
                lambda t=trial_id: slots.requeue_trial(
                    engine, t, reason=reason, max_retry=max_retry
                ),
                "re-queue slot",
            )
            requeued += copy is not None
        return requeued

    # -- notes for the dashboard ---------------------------------------------------------

    def trial_count(self, stage: Stage) -> int:
        """Trials of the stage in any state (``slots.count_trials``): one query."""
        from hpsearch.store import slots

        engine = self._rdb.engine
        return self._retry(lambda: slots.count_trials(engine, stage.study_id), "count trials")

    def note_state(self, stage: Stage) -> NoteState:
        """Whose the stage's note is and what it was drawn from (see :class:`NoteState`)."""
        attrs = self._retry(
            lambda: self._rdb.get_study_system_attrs(stage.study_id), "read note state"
        )
        mark = attrs.get(ATTR_NOTE_MARK) or {}
        return NoteState(int(attrs.get(NOTE_VERSION, 0)), mark.get("version"), mark.get("trials"))

    def save_note(
        self, stage: Stage, body: str, *, trials: int, figure: Any = None, figure_id: str = ""
    ) -> None:
        """The stage's markdown note drawn from its ``trials`` trials, and a plotly figure
        saved first (so that a writer dying in between leaves no note, and the next writer
        writes both again). The note's version is marked as hpsearch's, so that a later
        draw knows it may replace it and a person's edit (a newer version) is kept. The
        mark follows the note (optuna-dashboard saves a note in several writes, none of
        them ours to join): a writer killed between the two leaves a right note that
        counts as a person's, so it is kept, and not redrawn after a later extension."""
        from optuna_dashboard import save_note, save_plotly_graph_object

        if figure is not None:
            self._retry(
                lambda: save_plotly_graph_object(stage.study, figure, graph_object_id=figure_id),
                "save figure",
            )
        self._retry(lambda: save_note(stage.study, body), "save note")
        version = self.note_state(stage).version
        mark = {"version": version, "trials": trials}
        self._retry(
            lambda: self._rdb.set_study_system_attr(stage.study_id, ATTR_NOTE_MARK, mark),
            "mark note",
        )

    # -- managing searches (list, delete) ------------------------------------------------

    def search_studies(self, search: str) -> list[str]:
        """Every study of ``search``: its stages and its compare baselines, sorted. Found
        by name, not by the spec, so that what is left of a half-deleted search shows."""
        from hpsearch.store import slots

        engine = self._rdb.engine
        return sorted(self._retry(lambda: slots.search_studies(engine, search), "list studies"))

    def orphaned_searches(self) -> list[str]:
        """Names that have studies (``NAME/...``) but no search: what is left of a search
        whose first stage study was deleted by hand (``optuna delete-study``)."""
        names = {s.study_name.split("/", 1)[0] for s in self._studies() if "/" in s.study_name}
        return sorted(names - set(self.search_names()))

    def live_trials(self, search: str, grace_period: float) -> int:
        """RUNNING trials of ``search`` whose worker beat within ``grace_period`` seconds
        (the worker's ``--grace-period``): a worker is on the search right now."""
        from hpsearch.store import slots

        engine = self._rdb.engine

        def count() -> int:
            ids = slots.search_studies(engine, search).values()
            return sum(slots.live_trials(engine, i, grace_period) for i in ids)

        return self._retry(count, "count running trials")

    def delete_search(self, search: str) -> list[str]:
        """Delete every study of ``search`` (stages and baselines) in one transaction;
        the names deleted. The lease rows stay: a lease's fencing token must never go
        back (see ``slots.Lease.release``), and a relaunch takes a released one over."""
        from hpsearch.store import slots

        engine = self._rdb.engine

        def delete() -> list[str]:
            names = sorted(slots.search_studies(engine, search))
            slots.delete_studies(engine, names)
            return names

        return self._retry(delete, f"delete search {search}")

    # -- failures: fail fast and retry ---------------------------------------------------

    def outcomes(self, stage: Stage, window: int) -> Outcomes:
        """The counts fail-fast decides from (``slots.outcomes``), read fresh."""
        from hpsearch.core.failures import Outcomes
        from hpsearch.store import slots

        engine = self._rdb.engine
        succeeded, failed, recent = self._retry(
            lambda: slots.outcomes(engine, stage.study_id, window), "read outcomes"
        )
        return Outcomes(succeeded, failed, tuple(recent))

    def stopped(self, stage: Stage) -> dict[str, Any] | None:
        """The stage's stop mark, or None: every worker reads it before each claim."""
        from hpsearch.store import slots

        engine = self._rdb.engine
        return self._retry(
            lambda: slots.study_attr(engine, stage.study_id, ATTR_STOPPED), "read stop mark"
        )

    def stop(self, stage: Stage, info: dict[str, Any]) -> bool:
        """Mark the stage stopped, once: True if this call wrote the mark (insert-if-absent,
        so of workers deciding at once one wins and the mark says what it saw)."""
        from hpsearch.store import slots

        engine = self._rdb.engine
        return self._retry(
            lambda: slots.add_study_attr(engine, stage.study_id, ATTR_STOPPED, info), "stop"
        )

    def clear_stop(self, stage: Stage) -> None:
        from hpsearch.store import slots

        engine = self._rdb.engine
        self._retry(
            lambda: slots.delete_study_attr(engine, stage.study_id, ATTR_STOPPED), "clear stop"
        )

    def requeue_failed(self, stage: Stage) -> list[tuple[int, int]]:
        """Re-queue every failed trial of the stage that counts: one transaction per slot,
        each safe to race (``slots.requeue_failed``). Returns (failed, copy) numbers of
        those this call re-queued."""
        from hpsearch.store import slots

        engine = self._rdb.engine
        failed = self._retry(lambda: slots.failed_trials(engine, stage.study_id), "find failed")
        done = []
        for trial_id in failed:
            pair = self._retry(
                lambda t=trial_id: slots.requeue_failed(engine, t), "re-queue failed trial"
            )
            if pair is not None:
                done.append(pair)
        if done:
            log.info("%s: re-queued %d failed trial(s)", stage.name, len(done))
        return done

    def live_count(self, stage: Stage, grace_period: float) -> int:
        """Trials of the stage running under a worker that is presumed alive."""
        from hpsearch.store import slots

        engine = self._rdb.engine
        return self._retry(
            lambda: slots.live_trials(engine, stage.study_id, grace_period), "count running"
        )

    def delete_stage(self, stage: Stage) -> None:
        """Delete a stage study with all its trials, attrs and notes, in one transaction
        (Optuna's ``delete_study``), so that the stage is prepared afresh. The first stage
        holds the search's spec and is never deleted this way."""
        from hpsearch.core.errors import UserError

        if ATTR_SPEC in self.stage_attrs(stage):
            raise UserError(f"{stage.name} holds the search's spec; it cannot be discarded")

        def delete() -> None:
            # KeyError: gone already (a delete that committed before its connection dropped)
            with contextlib.suppress(KeyError):
                self._rdb.delete_study(stage.study_id)

        self._retry(delete, f"delete {stage.name}")

    # -- spec edits: a relaunch applying compatible changes of the study file -----------

    def spec_value(self, spec: StudySpec) -> dict[str, Any]:
        """The stored value of ``spec``'s search (``spec``, ``base_dir``, ``at``), on its
        first stage study; what :meth:`swap_spec` compares with."""
        stage = self.find_stage(spec.name, spec.stages[0].name)
        if stage is None or ATTR_SPEC not in (attrs := self.stage_attrs(stage)):
            raise StorageBroken(f"the spec of search {spec.name!r} is gone from the storage")
        return attrs[ATTR_SPEC]

    def current_spec(self, spec: StudySpec) -> StudySpec:
        """The spec stored now for ``spec``'s search (an edit may have changed it since)."""
        value = self.spec_value(spec)
        return spec_from_dict(value["spec"], base_dir=value.get("base_dir", "."))

    def ready_stages(self, search: str, stages: list[str]) -> set[str]:
        """Which of these stages of ``search`` are prepared (their study has ``ready``)."""
        found = {name: self.find_stage(search, name) for name in stages}
        return {
            name
            for name, stage in found.items()
            if stage is not None and self.stage_attrs(stage).get(ATTR_READY)
        }

    def spec_history(self, spec: StudySpec) -> list[dict[str, Any]]:
        """Every spec the search has had, oldest first: ``{"at", "spec", "changes"}``
        (empty for a search never edited)."""
        stage = self.find_stage(spec.name, spec.stages[0].name)
        return [] if stage is None else self.stage_attrs(stage).get(ATTR_HISTORY, [])

    def swap_spec(
        self,
        spec: StudySpec,
        old: dict[str, Any],
        new: dict[str, Any],
        changes: list[str],
        leases: list[StoreLease],
    ) -> bool:
        """Replace the stored value ``old`` of the search's spec by ``new``, and append
        ``new`` to its history with ``changes``; False (nothing written) if the stored
        value is not ``old`` any more. One transaction, fenced by ``leases``."""
        from hpsearch.store import slots

        stage = self.find_stage(spec.name, spec.stages[0].name)
        assert stage is not None, "a spec is swapped only where one is stored"
        entries = [] if self.spec_history(spec) else [_history_entry(old, [])]
        entries.append(_history_entry(new, changes))
        engine = self._rdb.engine
        return self._retry(
            lambda: slots.swap_study_attr(
                engine,
                stage.study_id,
                ATTR_SPEC,
                old,
                new,
                leases=[lease.lease for lease in leases],
                append=(ATTR_HISTORY, entries),
            ),
            "edit spec",
        )

    # -- early stopping: stopped runs and the epoch budget -------------------------------

    def top_up(self, stage: Stage, stop_early: StopEarly) -> int:
        """Append the slots the stage's unspent epochs buy (``slots.top_up``: one
        transaction under the study's write lock, safe to race); how many."""
        from hpsearch.store import slots

        engine = self._rdb.engine
        more = _top_up(stop_early)
        return self._retry(lambda: slots.top_up(engine, stage.study_id, more), "append slots")


def _history_entry(value: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    return {"at": value.get("at"), "spec": value["spec"], "changes": changes}


def now_iso() -> str:
    """Now, as the spec's history stores times: ISO 8601 in UTC."""
    import datetime

    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _top_up(stop_early: StopEarly) -> slots_module.TopUp:
    """The raw layer's view of ``stop_early``: slots with their points' distributions."""
    from hpsearch.store import slots

    def more(first: int, n: int) -> list[slots_module.NewSlot]:
        space = stop_early.space
        return [
            slots.NewSlot(
                s.slot, s.point, {k: space[k].to_distribution() for k in s.point}, s.user_attrs
            )
            for s in stop_early.more(first, n)
        ]

    return slots.TopUp(stop_early.budget, stop_early.epochs, more)


class StoreLease:
    """A lease whose database calls run under the store's retry policy.

    ``LeaseLost`` (someone took the lease over) is no database error: it passes through.
    """

    def __init__(self, store: SearchStore, lease: Lease) -> None:
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


class PruningStudy:
    """What Optuna's pruners read of a study (``direction``, ``get_trials``, ``_storage``
    for the rung attr successive halving writes), with the trials read lean.

    Why not the stage's ``optuna.Study``: a pruner lists the whole study at every reported
    epoch, and Optuna's cached storage reads every unfinished trial again each time, with
    its params and attrs. A stage queues its slots up front and a stopped run appends more,
    so that was every WAITING slot at every epoch: ASHA made a trial 5x dearer, this view
    1.6x (``benchmarks/stop_early_overhead.py``). It serves ``get_trials`` from
    ``slots.pruning_trials`` (trials that have run: a WAITING slot reported nothing),
    without their curves where the pruner compares none (``curves=False``)."""

    def __init__(self, storage: RDBStorage, stage: Stage, *, curves: bool = True) -> None:
        self._storage, self._stage, self._curves = storage, stage, curves

    @property
    def direction(self) -> optuna.study.StudyDirection:
        return self._stage.study.direction

    def get_trials(
        self, deepcopy: bool = True, states: Container[optuna.trial.TrialState] | None = None
    ) -> list[optuna.trial.FrozenTrial]:
        from optuna.trial import TrialState

        from hpsearch.store import slots

        wanted = tuple(
            n for n in slots.PRUNING_STATES if states is None or TrialState[n] in states
        )
        if not wanted:
            return []
        engine, study_id = self._storage.engine, self._stage.study_id
        return slots.pruning_trials(engine, study_id, wanted, curves=self._curves)


class Slot:
    """A claimed trial: its params, and the writes a worker makes while it runs.

    Prepared slots already carry their params (stored when the stage was prepared, read
    back by the claim), so running one costs the claim, one write per reported epoch and
    one final write: no sampler round trips and no commit per attr, which was most of
    Optuna's per-trial cost. Only slots without params (TPE's) go through an Optuna
    ``Trial``, whose sampler fills them at run time and sees their results.
    """

    def __init__(
        self,
        store: SearchStore,
        stage: Stage,
        claim: Claim,
        space: SearchSpace,
        stop_early: StopEarly | None = None,
    ) -> None:
        import optuna

        self._store, self._stage = store, stage
        self.trial_id, self.number = claim.trial_id, claim.number
        self.attrs = claim.user_attrs
        self._trial: optuna.Trial | None = None
        self._stop_early = stop_early
        self.last: tuple[int, float] | None = None  # the last epoch reported, and its value
        self.stopped_at: int | None = None  # the epoch after which early stopping stopped it
        if set(space.names) <= claim.params.keys():
            self.params = {name: claim.params[name] for name in space.names}
            return
        study = stage.study
        # Optuna's cache must have listed the trial before a Trial can write to it.
        store._retry(lambda: study.get_trials(deepcopy=False), "list trials")
        self._trial = optuna.trial.Trial(study, claim.trial_id)
        self.params = {
            p.name: store._retry(lambda p=p: p.suggest(self._trial), "suggest") for p in space
        }

    def report(self, epoch: int, value: float) -> None:
        """Record one epoch's value; TrialLost if the trial was finished elsewhere, and
        TrialStopped if the stage's early-stopping rule stops it here (then again on any
        later call: an objective that carried on is not recorded further)."""
        from optuna.exceptions import UpdateFinishedTrialError

        if self.stopped_at is not None:
            raise TrialStopped(f"trial {self.number} was stopped after epoch {self.stopped_at}")
        rdb = self._store._rdb
        try:
            self._store._retry(
                lambda: rdb.set_trial_intermediate_value(self.trial_id, epoch, value), "report"
            )
            self.last = (epoch, value)
            if self._losing(epoch):
                self.stopped_at = epoch
                raise TrialStopped(f"trial {self.number} stopped early after epoch {epoch}")
        except UpdateFinishedTrialError as exc:
            raise TrialLost(f"trial {self.number} was finished elsewhere") from exc

    def _losing(self, epoch: int) -> bool:
        """The stage's pruner, asked as Optuna asks it: ``prune(study, frozen_trial)``, on
        a :class:`PruningStudy` of the stage and this trial read as lean from the database
        (its intermediate values, and the rung attrs successive halving keeps on every
        trial). Never at the last epoch: a run that got there is finished, not stopped."""
        stop = self._stop_early
        if stop is None or epoch >= stop.epochs:
            return False
        from optuna.pruners import SuccessiveHalvingPruner
        from optuna.trial import TrialState

        from hpsearch.store import slots

        rdb = self._store._rdb
        # Successive halving compares the rung values alone (its min_resource is set, so it
        # never estimates one from the curves); the median rule compares curves.
        curves = not isinstance(stop.pruner, SuccessiveHalvingPruner)
        study = PruningStudy(rdb, self._stage, curves=curves)
        study_id = self._stage.study_id

        def ask() -> bool:
            # in any state: one finished elsewhere meanwhile raises UpdateFinishedTrialError
            # when successive halving records its rung (TrialLost, as for a report)
            any_state = tuple(state.name for state in TrialState)
            [me] = slots.pruning_trials(rdb.engine, study_id, any_state, trial_id=self.trial_id)
            return stop.pruner.prune(study, me)

        return self._store._retry(ask, "stop early?")

    def finish_stopped(self, attrs: dict[str, Any]) -> bool:
        """Record the trial as stopped early (PRUNED with its last reported value, the
        epochs it ran in ``epochs_run``) and append the slots the epochs it saved buy, in
        one transaction (``slots.finish_stopped``). False if the trial was lost."""
        from hpsearch.store import slots

        assert self._stop_early is not None and self.stopped_at is not None
        engine = self._store._rdb.engine
        value = self.last[1] if self.last is not None else None
        attrs = {**attrs, slots.EPOCHS_RUN: self.stopped_at}
        more = _top_up(self._stop_early)
        added = self._store._retry(
            lambda: slots.finish_stopped(engine, self.trial_id, value, attrs, more),
            "record stopped trial",
        )
        if added:
            log.info("trial %d stopped early: %d slot(s) appended", self.number, added)
        return added is not None

    def finish(self, value: float | None, attrs: dict[str, Any]) -> bool:
        """Record the value (a failure when None) and attrs; False if the trial was lost
        (failed and re-queued while this worker was away: nothing is written)."""
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        from hpsearch.store import slots

        store = self._store
        if self._trial is None:
            engine = store._rdb.engine
            return store._retry(
                lambda: slots.finish_trial(engine, self.trial_id, value, attrs), "record result"
            )
        rdb, study, trial = store._rdb, self._stage.study, self._trial
        state = TrialState.FAIL if value is None else TrialState.COMPLETE
        try:
            for key, v in attrs.items():  # TPE's slot: tell through Optuna, for its sampler
                store._retry(
                    lambda k=key, v=v: rdb.set_trial_user_attr(self.trial_id, k, v), "set attr"
                )
            store._retry(lambda: study.tell(trial, value, state=state), "tell")
        except UpdateFinishedTrialError:
            return False
        return True

    def interrupt(self) -> None:
        """Ctrl-C mid-trial: fail it and re-queue its slot so that a resume runs it again.

        One transaction (``slots.requeue_trial``): a second Ctrl-C or SIGTERM landing here
        leaves the trial either re-queued or still RUNNING (and recovered by heartbeat),
        never lost.
        """
        from hpsearch.store import slots

        engine = self._store._rdb.engine
        self._store._retry(
            lambda: slots.requeue_trial(engine, self.trial_id, reason="interrupted"),
            "re-queue interrupted trial",
        )

    @contextlib.contextmanager
    def heartbeat(self, interval: float) -> Iterator[None]:
        """Beat for this trial while the block runs.

        Not Optuna's heartbeat thread: it dies at the first database error, after which a
        healthy trial would be failed as stale during a short outage; this one logs and
        keeps beating (each beat is one attempt: the next beat is the retry).
        """
        stop = threading.Event()
        rdb = self._store._rdb

        def beat() -> None:
            while not stop.wait(interval):
                try:
                    rdb.record_heartbeat(self.trial_id)
                except Exception as exc:  # the database is away; the next beat retries
                    log.warning(
                        "heartbeat of trial %d failed: %s", self.number, type(exc).__name__
                    )

        thread = threading.Thread(target=beat, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


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


def _check_sqlite_file(url: str, path: Path, readonly: bool) -> str:
    """Refuse an SQLite path that can never work before SQLAlchemy retries it, and the URL
    to open: a read-only command never creates the file, and opens a read-only file in
    SQLite's read-only mode (else SQLite fails with "attempt to write a readonly database"
    on the first read of a WAL database).

    SQLite opens a WAL database read-only only if its ``-shm`` index exists or can be
    created beside it. In a read-only folder without one (the writers closed cleanly and
    took their ``-wal`` with them) it fails with "unable to open database file"; there no
    process can be writing the file in WAL mode, so it is opened ``immutable``, which
    needs no index."""
    where = f"--storage {mask_url(url)}"
    if not path.parent.is_dir():
        raise StorageUnusable(
            f"{where}: the folder {path.parent} does not exist; create it or pass another "
            "--storage"
        )
    if not readonly:
        return url
    if not path.exists():
        raise StorageUnusable(
            f"{where}: no such SQLite file {path}; run in the folder where the search "
            "was launched, or pass its --storage URL (reading never creates one)"
        )
    folder_writable = os.access(path.parent, os.W_OK)
    if folder_writable and os.access(path, os.W_OK):
        return url
    index = Path(f"{path}-shm")
    immutable = "" if folder_writable or index.exists() else "&immutable=1"
    return f"sqlite:///file:{path.resolve()}?mode=ro{immutable}&uri=true"
