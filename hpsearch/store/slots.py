"""The raw SQL that workers sharing one database coordinate through.

Private to :mod:`hpsearch.store`: nothing else writes these rows. Written as single SQL
statements or single transactions that every backend executes atomically, for what
Optuna does not give us safely across processes:

- **claiming a slot**: ``Study.ask()`` pops WAITING trials with ``SELECT ... FOR UPDATE``,
  which SQLite ignores, so two SQLite workers were handed the same slot; and when no slot
  is left, ``ask()`` creates a brand-new trial, which breaks exact budgets. A conditional
  ``UPDATE ... WHERE state = 'WAITING'`` is a compare-and-swap on every backend, and the
  heartbeat row is written in the same transaction, so no claimed trial is ever without
  one (Optuna never fails a RUNNING trial that has no heartbeat row).
- **re-queueing a slot**: Optuna's ``fail_stale_trials`` reads the state, writes FAIL,
  then lets ``RetryHeartbeatStaleTrialCallback`` add the copy in another transaction. On
  SQLite the read takes no lock, so workers recovering at once all "win": 8 processes
  recovering 20 stale trials queued 26 to 33 copies (points run twice, budgets overshot).
  Here the FAIL is a compare-and-swap on ``state = 'RUNNING'`` and the copy is inserted in
  the same transaction: exactly one copy, or none, even if the worker dies half-way.
- **a lease**: one worker prepares a stage; if it dies, the lease expires and another
  takes over. Insert-if-absent and update-if-expired are both single statements.
- **a fenced enqueue**: the lease is renewed *in the same transaction* as the slots it
  inserts, and the slots already there are read in that transaction too. A preparer that
  froze past its lease and wakes up finds its token gone and inserts nothing; the lease
  row lock orders it after the worker that took over, so no slot is ever added twice.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    func,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

_metadata = MetaData()
leases = Table(
    "hpsearch_leases",
    _metadata,
    Column("name", String(512), primary_key=True),
    Column("owner", String(255), nullable=False),
    Column("token", Integer, nullable=False),
    Column("expires_at", Float, nullable=False),
)


def worker_id() -> str:
    """``host:pid``: who holds a lease or ran a trial, readable in the dashboard."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _now() -> datetime:
    # Optuna writes datetime_start and datetime_complete as naive *local* time
    # (``datetime.now()``); the rows written here follow it, so that durations in reports
    # and the dashboard hold whichever path wrote a trial.
    return datetime.now()


@dataclass(frozen=True)
class Claim:
    """A slot this worker now runs: what the claim read back in the same transaction.

    ``params`` is empty for a slot whose sampler fills it at run time (TPE).
    """

    trial_id: int
    number: int
    params: dict[str, Any]
    user_attrs: dict[str, Any]


def claim_slot(engine: Engine, study_id: int, *, worker: str = "") -> Claim | None:
    """Move one WAITING trial of the study to RUNNING and return it, or None.

    One write transaction does all a worker needs before it runs the trial: the claim (a
    compare-and-swap), the heartbeat row (so no claimed trial is ever without one), the
    ``worker`` user attr, and the read of its params and attrs. Every commit is a disk
    flush on the database server, and at 16 workers those flushes were the service's
    throughput limit. Slots are taken in trial-id order, so one worker runs them in the
    order prepared.
    """
    with engine.begin() as conn:
        candidates = [
            row[0]
            for row in conn.execute(
                text(
                    "SELECT trial_id FROM trials WHERE study_id = :s AND state = 'WAITING' "
                    "ORDER BY trial_id LIMIT 16"
                ),
                {"s": study_id},
            )
        ]
    for trial_id in candidates:
        with engine.begin() as conn:
            if not _move(conn, trial_id, "WAITING", "RUNNING"):
                continue  # another worker won this one; try the next
            conn.execute(text("DELETE FROM trial_heartbeats WHERE trial_id = :t"), {"t": trial_id})
            conn.execute(
                text(
                    "INSERT INTO trial_heartbeats (trial_id, heartbeat) "
                    "VALUES (:t, CURRENT_TIMESTAMP)"
                ),
                {"t": trial_id},
            )
            user_t = _models().TrialUserAttributeModel.__table__
            if worker:
                _set_attr(conn, user_t, trial_id, "worker", worker)
            return Claim(
                trial_id=trial_id,
                number=conn.execute(
                    text("SELECT number FROM trials WHERE trial_id = :t"), {"t": trial_id}
                ).scalar_one(),
                params=_params(conn, trial_id),
                user_attrs=_attrs(conn, user_t, trial_id),
            )
    return None


def finish_trial(
    engine: Engine, trial_id: int, value: float | None, user_attrs: dict[str, Any]
) -> bool:
    """Record a finished trial in one transaction: COMPLETE with ``value`` (finite), or
    FAIL when ``value`` is None, with its user attrs.

    Optuna's ``tell`` plus one ``set_user_attr`` per attr commit 3 to 8 times. The state
    change is a compare-and-swap on RUNNING: False (nothing written) when the trial was
    failed and re-queued while this worker was away.
    """
    with engine.begin() as conn:
        if not _move(conn, trial_id, "RUNNING", "FAIL" if value is None else "COMPLETE"):
            return False
        _write_result(conn, trial_id, value, user_attrs)
    return True


def _write_result(
    conn: Connection, trial_id: int, value: float | None, user_attrs: dict[str, Any]
) -> None:
    """A finished trial's value (none for a failure) and user attrs, in ``conn``."""
    models = _models()
    if value is not None:
        stored, kind = models.TrialValueModel.value_to_stored_repr(value)
        conn.execute(
            models.TrialValueModel.__table__.insert().values(
                trial_id=trial_id, objective=0, value=stored, value_type=kind
            )
        )
    user_t = models.TrialUserAttributeModel.__table__
    for key, v in user_attrs.items():
        _set_attr(conn, user_t, trial_id, key, v)


def stale_trials(engine: Engine, study_id: int, grace_period: float) -> list[int]:
    """RUNNING trials whose worker is presumed gone: no heartbeat for ``grace_period``, or
    no heartbeat row at all and started more than ``grace_period`` ago.

    Heartbeats are written with the database's clock and compared with it here, as Optuna
    does. A worker killed between Optuna's claim and its first beat leaves a trial without
    a heartbeat row; Optuna's stale check skips those, so they would stay RUNNING forever
    and the stage would never end.
    """
    grace = timedelta(seconds=grace_period)
    with engine.begin() as conn:
        db_now = _as_datetime(conn.execute(select(func.now())).scalar())
        rows = conn.execute(
            text(
                "SELECT t.trial_id, t.datetime_start, h.heartbeat FROM trials t "
                "LEFT JOIN trial_heartbeats h ON h.trial_id = t.trial_id "
                "WHERE t.study_id = :s AND t.state = 'RUNNING'"
            ),
            {"s": study_id},
        ).all()
    cutoff = _now() - grace  # datetime_start: the claimer's clock, as Optuna writes it
    stale = []
    for trial_id, started, beat in rows:
        if beat is not None:
            if db_now - _as_datetime(beat) > grace:
                stale.append(trial_id)
        elif started is not None and _as_datetime(started) < cutoff:
            stale.append(trial_id)
    return stale


def _as_datetime(value: Any) -> datetime:
    """A naive datetime from a row: SQLite hands raw ``text()`` columns back as strings."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=None)


#: The user attrs that identify a slot: a re-queued copy carries these and nothing else
#: (the dead attempt's worker, timings and diagnostics stay with the dead attempt).
SLOT_ATTRS = ("slot", "stage", "epochs", "seed")


def requeue_trial(
    engine: Engine, trial_id: int, *, reason: str, max_retry: int | None = None
) -> int | None:
    """Fail a RUNNING trial and queue a copy of its slot (same params), atomically.

    Only the caller that moves the trial out of RUNNING does anything, so any number of
    workers may try at once. The copy lists the failed attempts in ``retry_history`` (as
    Optuna's ``RetryHeartbeatStaleTrialCallback`` does), which is how reports tell a
    superseded attempt from a trial that failed for good. A slot already retried
    ``max_retry`` times is failed for good with ``reason`` as its ``fail_reason``: a trial
    that kills its worker every time (out of memory, say) must not stall the search.

    Returns the copy's trial id; None if the trial was no longer RUNNING or was given up.
    """
    models = _models()
    user_t = models.TrialUserAttributeModel.__table__
    sys_t = models.TrialSystemAttributeModel.__table__
    with engine.begin() as conn:
        if not _move(conn, trial_id, "RUNNING", "FAIL"):
            return None
        study_id, number = _identify(conn, trial_id)
        system = _attrs(conn, sys_t, trial_id)
        if max_retry is not None and len(system.get("retry_history", [])) >= max_retry:
            _set_attr(conn, user_t, trial_id, "fail_reason", f"{reason}; given up after retries")
            log.warning("trial %d: %s; given up after %d retries", number, reason, max_retry)
            return None
        new_id, _ = _queue_copy(conn, trial_id, study_id, number, system)
        _set_attr(conn, user_t, trial_id, "fail_reason", f"{reason}; slot re-queued")
    log.warning("trial %d: %s; slot re-queued", number, reason)
    return new_id


def _identify(conn: Connection, trial_id: int) -> tuple[int, int]:
    """A trial's study id and number."""
    trials = _models().TrialModel.__table__
    row = conn.execute(
        select(trials.c.study_id, trials.c.number).where(trials.c.trial_id == trial_id)
    ).one()
    return row[0], row[1]


def _queue_copy(
    conn: Connection, trial_id: int, study_id: int, number: int, system: dict[str, Any]
) -> tuple[int, int]:
    """Insert a WAITING copy of a failed trial's slot, inside the caller's transaction: its
    params (in their order), its slot attrs, and its system attrs with the failed attempt
    added to ``retry_history``, which marks that attempt superseded. Returns the copy's id
    and number."""
    user_t = _models().TrialUserAttributeModel.__table__
    user = {k: v for k, v in _attrs(conn, user_t, trial_id).items() if k in SLOT_ATTRS}
    history = [*system.get("retry_history", []), number]
    system = {
        **system,
        "failed_trial": system.get("failed_trial", number),
        "retry_history": history,
    }
    new_number = _lock_study(conn, study_id)
    new_id = _insert_waiting_trial(
        conn, study_id, number=new_number, user_attrs=user, system_attrs=system
    )
    conn.execute(
        text(
            "INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json) "
            "SELECT :new, param_name, param_value, distribution_json FROM trial_params "
            "WHERE trial_id = :t ORDER BY param_id"  # params keep their order
        ),
        {"new": new_id, "t": trial_id},
    )
    return new_id, new_number


def _move(conn: Connection, trial_id: int, old: str, new: str) -> bool:
    """Compare-and-swap a trial's state, stamping its start (RUNNING) or completion time:
    one ``UPDATE ... WHERE state = old``, atomic on every backend. True if this caller won."""
    stamp = "datetime_start" if new == "RUNNING" else "datetime_complete"
    moved = conn.execute(
        text(
            f"UPDATE trials SET state = :new, {stamp} = :now WHERE trial_id = :t AND state = :old"
        ),
        {"t": trial_id, "old": old, "new": new, "now": _now()},
    ).rowcount
    return moved == 1


def _models() -> Any:
    # Optuna's own table definitions (pinned with Optuna 5), so that the rows written here
    # are ordinary trials to optuna.load_study and the dashboard.
    from optuna.storages._rdb import models

    return models


def _lock_study(conn: Connection, study_id: int) -> int:
    """Lock the study row as Optuna locks it before numbering a new trial (so that
    concurrent numbers cannot clash on PostgreSQL; SQLite already holds its single write
    lock here), and return how many trials the study has: the next trial's number."""
    models = _models()
    trials, studies = models.TrialModel.__table__, models.StudyModel.__table__
    conn.execute(
        select(studies.c.study_id).where(studies.c.study_id == study_id).with_for_update()
    )
    return conn.execute(
        select(func.count()).select_from(trials).where(trials.c.study_id == study_id)
    ).scalar_one()


def _insert_waiting_trial(
    conn: Connection,
    study_id: int,
    *,
    number: int,
    user_attrs: dict[str, Any],
    system_attrs: dict[str, Any],
) -> int:
    """A WAITING trial with the given number (see :func:`_lock_study`) and attrs."""
    from optuna.trial import TrialState

    models = _models()
    trials = models.TrialModel.__table__
    new_id = conn.execute(
        trials.insert().values(study_id=study_id, number=number, state=TrialState.WAITING)
    ).inserted_primary_key[0]
    for table, attrs in (
        (models.TrialUserAttributeModel.__table__, user_attrs),
        (models.TrialSystemAttributeModel.__table__, system_attrs),
    ):
        for key, value in attrs.items():
            _set_attr(conn, table, new_id, key, value)
    return int(new_id)


@dataclass(frozen=True)
class NewSlot:
    """A slot to enqueue: its number in the stage, its point and the attrs it carries.

    ``params`` is empty for a slot whose sampler fills it at run time (TPE)."""

    slot: int
    params: dict[str, Any]
    distributions: dict[str, Any]  # name -> optuna BaseDistribution
    user_attrs: dict[str, Any]


def enqueue_slots(engine: Engine, study_id: int, slots: list[NewSlot], lease: Lease) -> int:
    """Insert the slots that the study does not have yet, fenced by ``lease``.

    One transaction: renew the lease (a stale token raises :class:`LeaseLost` before
    anything is written, and the renewal's row lock orders this transaction after a
    take-over), read which slot numbers exist, insert the missing ones with their params.
    Returns how many were inserted.

    The rows go in with one INSERT per table for the whole batch (an executemany; the
    trials' RETURNING in parameter order gives each slot its trial id). A statement per
    row kept a 100-slot transaction open for 0.3 s: with connections dropped every
    0.25 s, every attempt was rolled back and the stage was never prepared.
    """
    with engine.begin() as conn:
        lease.renew(conn)
        existing = _slot_numbers(conn, study_id)
        todo = [s for s in slots if s.slot not in existing]
        if not todo:
            return 0
        _insert_slots(conn, study_id, _lock_study(conn, study_id), todo)
    return len(todo)


def _insert_slots(conn: Connection, study_id: int, number: int, slots: list[NewSlot]) -> None:
    """Insert WAITING trials for ``slots``, numbered from ``number`` (see _lock_study),
    with one INSERT per table for the whole batch (see :func:`enqueue_slots`)."""
    from optuna.distributions import distribution_to_json
    from optuna.trial import TrialState

    models = _models()
    trials = models.TrialModel.__table__
    rows = [
        {"study_id": study_id, "number": number + i, "state": TrialState.WAITING}
        for i in range(len(slots))
    ]
    ids = conn.execute(
        trials.insert().returning(trials.c.trial_id, sort_by_parameter_order=True), rows
    ).scalars()
    attrs, params = [], []
    for trial_id, s in zip(ids, slots, strict=True):
        attrs += [
            {"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
            for key, value in s.user_attrs.items()
        ]
        params += [
            {
                "trial_id": trial_id,
                "param_name": name,
                "param_value": s.distributions[name].to_internal_repr(value),
                "distribution_json": distribution_to_json(s.distributions[name]),
            }
            for name, value in s.params.items()
        ]
    for table, values in (
        (models.TrialUserAttributeModel.__table__, attrs),
        (models.TrialParamModel.__table__, params),
    ):
        if values:
            conn.execute(table.insert(), values)


def _slot_numbers(conn: Connection, study_id: int) -> set[int]:
    rows = conn.execute(
        text(
            "SELECT a.value_json FROM trial_user_attributes a "
            "JOIN trials t ON t.trial_id = a.trial_id "
            "WHERE t.study_id = :s AND a.key = 'slot'"
        ),
        {"s": study_id},
    )
    return {int(json.loads(value)) for (value,) in rows}


def trial_ids(engine: Engine, study_id: int) -> list[int]:
    """The study's trial ids, in order."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                text("SELECT trial_id FROM trials WHERE study_id = :s ORDER BY trial_id"),
                {"s": study_id},
            ).scalars()
        )


def count_open(engine: Engine, study_id: int) -> int:
    """Trials of the study still WAITING or RUNNING: zero means the stage is finished."""
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT COUNT(*) FROM trials WHERE study_id = :s "
                "AND state IN ('WAITING', 'RUNNING')"
            ),
            {"s": study_id},
        ).scalar_one()


#: The states of the trials a pruner may compare with: a WAITING slot has reported nothing.
PRUNING_STATES = ("RUNNING", "COMPLETE", "PRUNED")


def pruning_trials(
    engine: Engine,
    study_id: int,
    states: tuple[str, ...] = PRUNING_STATES,
    *,
    curves: bool = True,
    trial_id: int | None = None,
) -> list[Any]:
    """The study's trials in ``states`` (state names; ``trial_id``: that one alone, if
    in them) as FrozenTrials holding what Optuna's pruners read: state, curve
    (intermediate values; left empty without ``curves``) and the rung values successive
    halving records in system attrs; no params or user attrs. Two or three queries; see
    ``store.PruningStudy`` for why not ``study.get_trials``."""
    from optuna.trial import FrozenTrial, TrialState

    model = _models().TrialIntermediateValueModel
    where = "t.study_id = :s AND t.state IN :states" + (
        " AND t.trial_id = :t" if trial_id is not None else ""
    )
    args = {"s": study_id, "states": tuple(states), "t": trial_id}

    def query(sql: str) -> Any:
        return conn.execute(text(sql).bindparams(bindparam("states", expanding=True)), args)

    with engine.connect() as conn:
        rows = query(f"SELECT t.trial_id, t.number, t.state FROM trials t WHERE {where}").all()
        values: dict[int, dict[int, float]] = {row[0]: {} for row in rows}
        rungs: dict[int, dict[str, Any]] = {row[0]: {} for row in rows}
        # A trial whose state changed since the first query (claimed, finished) is left as
        # that query found it: each statement reads the latest committed rows.
        if curves:
            for tid, step, value, kind in query(
                "SELECT v.trial_id, v.step, v.intermediate_value, v.intermediate_value_type "
                "FROM trial_intermediate_values v JOIN trials t ON t.trial_id = v.trial_id "
                f"WHERE {where}"
            ):
                if tid in values:
                    kind = model.TrialIntermediateValueType[kind]
                    values[tid][step] = model.stored_repr_to_intermediate_value(value, kind)
        for tid, key, value in query(
            "SELECT a.trial_id, a.key, a.value_json FROM trial_system_attributes a "
            f"JOIN trials t ON t.trial_id = a.trial_id WHERE {where} "
            "AND a.key LIKE 'completed_rung_%'"
        ):
            if tid in rungs:
                rungs[tid][key] = json.loads(value)
    return [
        FrozenTrial(
            number, TrialState[state], None, None, None, {}, {}, {}, rungs[tid], values[tid], tid
        )
        for tid, number, state in sorted(rows, key=lambda r: r[1])
    ]


def count_trials(engine: Engine, study_id: int) -> int:
    """Every trial of the study, in any state: it only grows, so an unchanged count means
    nothing was added (an extension adds slots, a retry fresh copies of failed ones)."""
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT COUNT(*) FROM trials WHERE study_id = :s"), {"s": study_id}
        ).scalar_one()


def add_study_attr(engine: Engine, study_id: int, key: str, value: Any) -> bool:
    """Write a study user attr only if it is absent, atomically: Optuna's table has a
    unique (study_id, key), so of two writers racing one insert fails. True if written."""
    table = _models().StudyUserAttributeModel.__table__
    try:
        with engine.begin() as conn:
            conn.execute(
                table.insert().values(study_id=study_id, key=key, value_json=json.dumps(value))
            )
    except IntegrityError:
        return False
    return True


def swap_study_attr(
    engine: Engine,
    study_id: int,
    key: str,
    old: Any,
    new: Any,
    *,
    leases: list[Lease],
    append: tuple[str, list[Any]],
) -> bool:
    """Compare-and-swap a study user attr: ``key`` becomes ``new`` only if it holds
    ``old``, and the list attr ``append[0]`` gets ``append[1]`` appended, in one
    transaction fenced by ``leases``. True if this caller swapped.

    The swap is a conditional ``UPDATE ... WHERE value_json = <the text read>``: of two
    writers racing, the second updates no row (PostgreSQL re-checks the condition once
    the first commits; SQLite has one writer at a time), so it writes nothing.
    """
    table = _models().StudyUserAttributeModel.__table__
    where = (table.c.study_id == study_id, table.c.key == key)
    with engine.begin() as conn:
        for lease in leases:
            lease.renew(conn)
        stored = conn.execute(select(table.c.value_json).where(*where)).scalar_one_or_none()
        if stored is None or json.loads(stored) != old:
            return False
        swapped = conn.execute(
            table.update()
            .where(*where, table.c.value_json == stored)
            .values(value_json=json.dumps(new))
        ).rowcount
        if swapped != 1:
            return False
        list_key, items = append
        at = (table.c.study_id == study_id, table.c.key == list_key)
        before = conn.execute(select(table.c.value_json).where(*at)).scalar_one_or_none()
        conn.execute(table.delete().where(*at))
        value = [*(json.loads(before) if before is not None else []), *items]
        conn.execute(
            table.insert().values(study_id=study_id, key=list_key, value_json=json.dumps(value))
        )
    return True


def _attrs(conn: Connection, table: Table, trial_id: int) -> dict[str, Any]:
    rows = conn.execute(
        select(table.c.key, table.c.value_json).where(table.c.trial_id == trial_id)
    )
    return {key: json.loads(value) for key, value in rows}


def _params(conn: Connection, trial_id: int) -> dict[str, Any]:
    """A trial's params in their external form, in the order they were stored."""
    from optuna.distributions import json_to_distribution

    rows = conn.execute(
        text(
            "SELECT param_name, param_value, distribution_json FROM trial_params "
            "WHERE trial_id = :t ORDER BY param_id"
        ),
        {"t": trial_id},
    )
    return {name: json_to_distribution(dist).to_external_repr(value) for name, value, dist in rows}


def _set_attr(conn: Connection, table: Table, trial_id: int, key: str, value: Any) -> None:
    conn.execute(table.delete().where(table.c.trial_id == trial_id, table.c.key == key))
    conn.execute(table.insert().values(trial_id=trial_id, key=key, value_json=json.dumps(value)))


#: Engines whose lease table is known to exist: created once per process, not per poll.
_lease_tables: weakref.WeakSet[Engine] = weakref.WeakSet()


def _create_lease_table(engine: Engine) -> None:
    """Create the lease table if missing (once per engine). Workers started together race to create it, and
    ``checkfirst`` is no lock (PostgreSQL answered the loser with DuplicateObject /
    UniqueViolation): whoever loses finds the table there, which is all it wanted."""
    from sqlalchemy.exc import DBAPIError

    if engine in _lease_tables:
        return
    try:
        _metadata.create_all(engine, checkfirst=True)
    except DBAPIError:
        from sqlalchemy import inspect

        if not inspect(engine).has_table(leases.name):
            raise
    _lease_tables.add(engine)


class LeaseLost(RuntimeError):
    """Another worker took the lease over: stop writing under it."""


class Lease:
    """A named, expiring lock in the database, with a fencing token.

    ``acquire`` succeeds if nobody holds the name or the holder's lease expired (it died or
    froze); the token grows on every take-over and never goes back (a release only expires
    the row), so a holder that wakes up after losing the lease sees :class:`LeaseLost` at
    its next :meth:`check` instead of writing on.

    Expiry times are the workers' wall clocks: machines sharing a database must keep their
    clocks in sync (NTP) to well within the lease duration.
    """

    def __init__(self, engine: Engine, name: str, *, duration_s: float, owner: str) -> None:
        self.engine = engine
        self.name = name
        self.duration_s = duration_s
        self.owner = owner
        self.token: int | None = None
        _create_lease_table(engine)

    def acquire(self) -> bool:
        now = time.time()
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    leases.insert().values(
                        name=self.name,
                        owner=self.owner,
                        token=1,
                        expires_at=now + self.duration_s,
                    )
                )
            self.token = 1
            return True
        except IntegrityError:
            pass
        with self.engine.begin() as conn:
            row = conn.execute(leases.select().where(leases.c.name == self.name)).one_or_none()
            if row is None or row.expires_at > now:
                return False
            # The UPDATE re-checks the expiry itself: on PostgreSQL, a holder renewing at
            # this very moment makes the take-over fail rather than both hold the lease.
            taken = conn.execute(
                leases.update()
                .where(
                    leases.c.name == self.name,
                    leases.c.token == row.token,
                    leases.c.expires_at <= now,
                )
                .values(owner=self.owner, token=row.token + 1, expires_at=now + self.duration_s)
            ).rowcount
        if taken == 1:
            if row.expires_at > 0:  # 0: released, not abandoned
                log.warning("took over expired lease %s from %s", self.name, row.owner)
            self.token = row.token + 1
            return True
        return False

    def check(self) -> None:
        """Renew the lease, or raise LeaseLost if someone took it over."""
        with self.engine.begin() as conn:
            self.renew(conn)

    def renew(self, conn: Connection) -> None:
        """Renew the lease inside the caller's transaction (the fence of whatever else it
        writes), or raise LeaseLost, which rolls that transaction back."""
        renewed = conn.execute(
            leases.update()
            .where(leases.c.name == self.name, leases.c.token == self.token)
            .values(expires_at=time.time() + self.duration_s)
        ).rowcount
        if renewed != 1:
            raise LeaseLost(f"lease {self.name} was taken over by another worker")

    def release(self) -> None:
        """Expire the lease now. The row stays: were it deleted, the next holder would get
        token 1 again, and a frozen holder of an old token 1 could write on when it woke."""
        with self.engine.begin() as conn:
            conn.execute(
                leases.update()
                .where(leases.c.name == self.name, leases.c.token == self.token)
                .values(expires_at=0.0)
            )
        self.token = None


def set_study_attrs(engine: Engine, study_id: int, attrs: dict[str, Any], lease: Lease) -> None:
    """Write study user attrs in one transaction fenced by ``lease`` (see enqueue_slots):
    a preparer that lost its lease cannot overwrite what the new holder wrote."""
    table = _models().StudyUserAttributeModel.__table__
    with engine.begin() as conn:
        lease.renew(conn)
        for key, value in attrs.items():
            conn.execute(table.delete().where(table.c.study_id == study_id, table.c.key == key))
            conn.execute(
                table.insert().values(study_id=study_id, key=key, value_json=json.dumps(value))
            )


@dataclass(frozen=True)
class StageCounts:
    """Where one stage stands, for a progress display: slots done (a slot counts once,
    whatever its re-queued attempts), running and waiting trials, the best value so far
    (lowest and highest: the caller knows the direction) and the mean duration of the last
    finished trials (for an ETA)."""

    done: int
    running: int
    waiting: int
    lowest: float | None
    highest: float | None
    mean_duration_s: float | None


#: Finished trials an ETA averages over: recent ones, as trial length drifts in a stage.
RECENT = 50


def stage_counts(engine: Engine, search: str) -> dict[str, StageCounts]:
    """Every stage study of ``search`` (matched as a literal prefix), in a few queries."""
    models = _models()
    studies, trials = models.StudyModel.__table__, models.TrialModel.__table__
    values, user = models.TrialValueModel.__table__, models.TrialUserAttributeModel.__table__
    out: dict[str, StageCounts] = {}
    with engine.connect() as conn:
        found = conn.execute(
            select(studies.c.study_id, studies.c.study_name).where(
                studies.c.study_name.startswith(search + "/", autoescape=True)
            )
        ).all()
        for study_id, name in found:
            states = dict(
                conn.execute(
                    select(trials.c.state, func.count())
                    .where(trials.c.study_id == study_id)
                    .group_by(trials.c.state)
                ).all()
            )
            slot = select(user.c.value_json).join(trials, trials.c.trial_id == user.c.trial_id)
            slot = slot.where(trials.c.study_id == study_id, user.c.key == "slot")
            open_slots = slot.where(trials.c.state.in_(["WAITING", "RUNNING"]))
            done = conn.execute(
                select(func.count(func.distinct(user.c.value_json)))
                .select_from(user.join(trials, trials.c.trial_id == user.c.trial_id))
                .where(
                    trials.c.study_id == study_id,
                    user.c.key == "slot",
                    trials.c.state.in_(["COMPLETE", "FAIL", "PRUNED"]),
                    user.c.value_json.not_in(open_slots),
                )
            ).scalar_one()
            low, high = conn.execute(
                select(func.min(values.c.value), func.max(values.c.value))
                .join(trials, trials.c.trial_id == values.c.trial_id)
                .where(trials.c.study_id == study_id, trials.c.state == "COMPLETE")
            ).one()
            spans = conn.execute(
                select(trials.c.datetime_start, trials.c.datetime_complete)
                .where(
                    trials.c.study_id == study_id,
                    trials.c.state.in_(["COMPLETE", "FAIL", "PRUNED"]),
                    trials.c.datetime_start.is_not(None),
                    trials.c.datetime_complete.is_not(None),
                )
                .order_by(trials.c.trial_id.desc())
                .limit(RECENT)
            ).all()
            durations = [(_as_datetime(b) - _as_datetime(a)).total_seconds() for a, b in spans]
            out[name.split("/", 1)[1]] = StageCounts(
                done=int(done),
                running=int(_count(states, "RUNNING")),
                waiting=int(_count(states, "WAITING")),
                lowest=low,
                highest=high,
                mean_duration_s=sum(durations) / len(durations) if durations else None,
            )
    return out


def _count(states: dict[Any, int], name: str) -> int:
    # The state column is Optuna's TrialState enum; rows may hand back the enum or its name.
    return sum(n for state, n in states.items() if getattr(state, "name", state) == name)


# -- managing searches (list, delete) -------------------------------------------------


def search_studies(engine: Engine, search: str) -> dict[str, int]:
    """Every study of ``search`` (its stages and compare baselines: ``NAME/...``), name ->
    id. The name is a literal prefix, as in :func:`stage_counts`."""
    studies = _models().StudyModel.__table__
    query = select(studies.c.study_name, studies.c.study_id).where(
        studies.c.study_name.startswith(search + "/", autoescape=True)
    )
    with engine.connect() as conn:
        return {name: int(study_id) for name, study_id in conn.execute(query)}


def live_trials(engine: Engine, study_id: int, grace_period: float) -> int:
    """RUNNING trials of the study whose worker is presumed alive: the ones
    :func:`stale_trials` does not name (one definition of a fresh heartbeat). A trial that
    finishes between the two reads counts as alive, which errs on the side of caution."""
    with engine.connect() as conn:
        running = {
            row[0]
            for row in conn.execute(
                text("SELECT trial_id FROM trials WHERE study_id = :s AND state = 'RUNNING'"),
                {"s": study_id},
            )
        }
    if not running:
        return 0
    return len(running - set(stale_trials(engine, study_id, grace_period)))


def delete_studies(engine: Engine, names: list[str]) -> None:
    """Delete these studies with everything in them, in one transaction: all or none, so
    that an interrupted delete never leaves half a search behind (a later stage without
    the spec, which a relaunch would silently skip). Optuna's ORM models cascade to every
    table that hangs off a study (trials, params, values, attrs, heartbeats), as its own
    ``delete_study`` does, one study per transaction."""
    from sqlalchemy.orm import Session

    study_model = _models().StudyModel
    with Session(engine) as session, session.begin():
        for study in session.scalars(select(study_model).where(study_model.study_name.in_(names))):
            session.delete(study)


# -- failures: fail fast and retry ------------------------------------------------------
#
# A failed trial's slot is re-queued as a fresh WAITING copy (same params and slot attrs),
# the failed attempt kept as history, exactly as a heartbeat re-queue does: the copy's
# ``retry_history`` lists it, which is what marks it superseded everywhere.

#: The user attr set on a failed trial whose slot :func:`requeue_failed` re-queued: the
#: copy's number. Optuna's unique (trial_id, key) makes writing it the fence that lets any
#: number of workers (and ``hpsearch retry``) re-queue the same failures at once.
REQUEUED_AS = "requeued_as"


def _superseded(conn: Connection, study_id: int) -> set[int]:
    """Numbers of the study's trials whose slot was re-queued (all copies' histories)."""
    rows = conn.execute(
        text(
            "SELECT a.value_json FROM trial_system_attributes a "
            "JOIN trials t ON t.trial_id = a.trial_id "
            "WHERE t.study_id = :s AND a.key = 'retry_history'"
        ),
        {"s": study_id},
    )
    return {int(n) for (value,) in rows for n in json.loads(value)}


def outcomes(engine: Engine, study_id: int, window: int) -> tuple[int, int, list[bool]]:
    """What fail-fast decides from: the study's COMPLETE trials, its failed trials that
    count (not superseded), and the last ``window`` counted finished trials by completion
    time, newest first (True: failed). Bounded: only the newest rows are read in order."""
    with engine.connect() as conn:
        gone = _superseded(conn, study_id)
        succeeded = conn.execute(
            text("SELECT COUNT(*) FROM trials WHERE study_id = :s AND state = 'COMPLETE'"),
            {"s": study_id},
        ).scalar_one()
        failed = conn.execute(
            text("SELECT number FROM trials WHERE study_id = :s AND state = 'FAIL'"),
            {"s": study_id},
        )
        n_failed = sum(1 for (number,) in failed if number not in gone)
        newest = conn.execute(
            text(
                "SELECT number, state FROM trials WHERE study_id = :s "
                "AND state IN ('COMPLETE', 'FAIL') "
                "ORDER BY datetime_complete DESC, trial_id DESC LIMIT :n"
            ),
            {"s": study_id, "n": window + len(gone)},
        )
        recent = [state == "FAIL" for number, state in newest if number not in gone]
    return int(succeeded), n_failed, recent[:window]


def failed_trials(engine: Engine, study_id: int) -> list[int]:
    """Ids of the study's failed trials that count (not superseded), in trial order."""
    with engine.connect() as conn:
        gone = _superseded(conn, study_id)
        rows = conn.execute(
            text(
                "SELECT trial_id, number FROM trials WHERE study_id = :s AND state = 'FAIL' "
                "ORDER BY trial_id"
            ),
            {"s": study_id},
        )
        return [trial_id for trial_id, number in rows if number not in gone]


def requeue_failed(engine: Engine, trial_id: int) -> tuple[int, int] | None:
    """Queue a fresh copy of a FAIL trial's slot, atomically; the failed trial stays as
    history (superseded by the copy). Returns (failed number, copy number), or None if
    the trial is not FAIL or was re-queued already.

    One transaction that starts with its fence, a write (so that SQLite takes its write
    lock before reading anything): ``requeued_as`` inserted on the failed trial if it is
    FAIL. A second caller's insert fails on the unique key (on PostgreSQL it waits for
    the first to commit), which rolls its whole transaction back: exactly one copy.
    """
    user_t = _models().TrialUserAttributeModel.__table__
    sys_t = _models().TrialSystemAttributeModel.__table__
    try:
        with engine.begin() as conn:
            fenced = conn.execute(
                text(
                    "INSERT INTO trial_user_attributes (trial_id, key, value_json) "
                    "SELECT trial_id, :k, 'null' FROM trials "
                    "WHERE trial_id = :t AND state = 'FAIL'"
                ),
                {"k": REQUEUED_AS, "t": trial_id},
            ).rowcount
            if fenced != 1:
                return None
            study_id, number = _identify(conn, trial_id)
            system = _attrs(conn, sys_t, trial_id)
            _, copy = _queue_copy(conn, trial_id, study_id, number, system)
            _set_attr(conn, user_t, trial_id, REQUEUED_AS, copy)
    except IntegrityError:
        return None
    return number, copy


def study_attr(engine: Engine, study_id: int, key: str) -> Any:
    """One study user attr (None if absent): a cheap read for a check made per claim."""
    table = _models().StudyUserAttributeModel.__table__
    with engine.connect() as conn:
        value = conn.execute(
            select(table.c.value_json).where(table.c.study_id == study_id, table.c.key == key)
        ).scalar()
    return None if value is None else json.loads(value)


def delete_study_attr(engine: Engine, study_id: int, key: str) -> None:
    table = _models().StudyUserAttributeModel.__table__
    with engine.begin() as conn:
        conn.execute(table.delete().where(table.c.study_id == study_id, table.c.key == key))


# -- early stopping: stopped runs and the epoch budget they leave -----------------------
#
# A stage that stops runs early has a budget in epochs (``trials * epochs``): the epochs a
# stopped run did not spend buy more runs. Slots are appended only inside a transaction
# that first takes the study's write lock, so workers recording stops at once append one
# after the other, each counting what the last one appended: never a slot too many.

#: The user attr a stopped trial carries: the epochs it ran before it was stopped.
EPOCHS_RUN = "epochs_run"


def finish_stopped(
    engine: Engine,
    trial_id: int,
    value: float | None,
    user_attrs: dict[str, Any],
    top_up: TopUp,
) -> int | None:
    """Record a trial stopped early as PRUNED (with ``value``, its last reported value,
    as Optuna records a pruned trial, and ``user_attrs`` with :data:`EPOCHS_RUN`), and
    append the slots the epochs it saved buy, in one transaction. Returns how many slots
    were appended; None (nothing written) when the trial was re-queued meanwhile.

    The state change comes first: a write, so that SQLite holds its write lock before the
    budget is read, and the same lock order (trial, then study) as a heartbeat re-queue.
    """
    with engine.begin() as conn:
        if not _move(conn, trial_id, "RUNNING", "PRUNED"):
            return None
        _write_result(conn, trial_id, value, user_attrs)
        study_id, _ = _identify(conn, trial_id)
        return _top_up(conn, study_id, top_up)


def top_up(engine: Engine, study_id: int, more: TopUp) -> int:
    """Append the slots the stage's unspent epochs buy (see :func:`finish_stopped`), on
    its own: what a worker does before it leaves a stage, so that budget left by any path
    (a stage given more trials by an edit, say) is still spent. How many were appended."""
    studies = _models().StudyModel.__table__
    with engine.begin() as conn:
        # A write that changes nothing, for its lock: SQLite's write lock before the
        # reads (a SELECT there takes none), the study row's lock on PostgreSQL.
        conn.execute(
            studies.update()
            .where(studies.c.study_id == study_id)
            .values(study_name=studies.c.study_name)
        )
        return _top_up(conn, study_id, more)


@dataclass(frozen=True)
class TopUp:
    """What appending slots to a stage needs: its budget and run length in epochs, and
    ``slots(first, n)``, the stage's next ``n`` slots from slot number ``first`` on (a pure
    function: the same numbers give the same points, whoever appends them)."""

    budget: int
    epochs: int
    slots: Callable[[int, int], list[NewSlot]]


def committed_epochs(conn: Connection, study_id: int, epochs: int) -> tuple[int, int]:
    """Epochs the stage's slots are spending or have spent, and the next slot number.

    A slot counts ``epochs`` (waiting, running, complete, failed: a failed slot is
    re-queued by a retry, at full length), except a stopped one, which counts the epochs
    it ran. A slot re-queued after a lost worker is one slot however many attempts it had.
    """
    numbers = _slot_numbers(conn, study_id)
    saved = conn.execute(
        text(
            "SELECT a.value_json FROM trial_user_attributes a "
            "JOIN trials t ON t.trial_id = a.trial_id "
            "WHERE t.study_id = :s AND t.state = 'PRUNED' AND a.key = :k"
        ),
        {"s": study_id, "k": EPOCHS_RUN},
    )
    unspent = sum(max(0, epochs - int(json.loads(v))) for (v,) in saved)
    return len(numbers) * epochs - unspent, (max(numbers) + 1 if numbers else 0)


def _top_up(conn: Connection, study_id: int, more: TopUp) -> int:
    # The study row's lock before the count: on PostgreSQL a second worker recording a
    # stop waits here and then reads what the first appended (read committed).
    number = _lock_study(conn, study_id)
    spent, first = committed_epochs(conn, study_id, more.epochs)
    n = max(0, (more.budget - spent) // more.epochs)
    if n:
        _insert_slots(conn, study_id, number, more.slots(first, n))
    return n
