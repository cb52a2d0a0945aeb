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

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, func, select, text
from sqlalchemy.exc import IntegrityError

if TYPE_CHECKING:
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
    models = _models()
    with engine.begin() as conn:
        if not _move(conn, trial_id, "RUNNING", "FAIL" if value is None else "COMPLETE"):
            return False
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
    return True


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
    trials = models.TrialModel.__table__
    user_t = models.TrialUserAttributeModel.__table__
    sys_t = models.TrialSystemAttributeModel.__table__
    with engine.begin() as conn:
        if not _move(conn, trial_id, "RUNNING", "FAIL"):
            return None
        study_id, number = conn.execute(
            select(trials.c.study_id, trials.c.number).where(trials.c.trial_id == trial_id)
        ).one()
        system = _attrs(conn, sys_t, trial_id)
        history = [*system.get("retry_history", []), number]
        if max_retry is not None and len(history) > max_retry:
            _set_attr(conn, user_t, trial_id, "fail_reason", f"{reason}; given up after retries")
            log.warning("trial %d: %s; given up after %d retries", number, reason, max_retry)
            return None
        user = {k: v for k, v in _attrs(conn, user_t, trial_id).items() if k in SLOT_ATTRS}
        system.update(failed_trial=system.get("failed_trial", number), retry_history=history)
        new_id = _insert_waiting_trial(
            conn,
            study_id,
            number=_lock_study(conn, study_id),
            user_attrs=user,
            system_attrs=system,
        )
        conn.execute(
            text(
                "INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json) "
                "SELECT :new, param_name, param_value, distribution_json FROM trial_params "
                "WHERE trial_id = :t ORDER BY param_id"  # params keep their order
            ),
            {"new": new_id, "t": trial_id},
        )
        _set_attr(conn, user_t, trial_id, "fail_reason", f"{reason}; slot re-queued")
    log.warning("trial %d: %s; slot re-queued", number, reason)
    return new_id


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
    from optuna.distributions import distribution_to_json
    from optuna.trial import TrialState

    models = _models()
    trials = models.TrialModel.__table__
    with engine.begin() as conn:
        lease.renew(conn)
        existing = _slot_numbers(conn, study_id)
        todo = [s for s in slots if s.slot not in existing]
        if not todo:
            return 0
        number = _lock_study(conn, study_id)
        rows = [
            {"study_id": study_id, "number": number + i, "state": TrialState.WAITING}
            for i in range(len(todo))
        ]
        ids = conn.execute(
            trials.insert().returning(trials.c.trial_id, sort_by_parameter_order=True), rows
        ).scalars()
        attrs, params = [], []
        for trial_id, s in zip(ids, todo, strict=True):
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
    return len(todo)


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


def finished_per_stage(engine: Engine, search: str) -> dict[str, int]:
    """Finished trials per stage study of ``search``, in one query. The name is matched as
    a literal prefix: ``_`` and ``%`` in a search name are not wildcards."""
    studies, trials = _models().StudyModel.__table__, _models().TrialModel.__table__
    finished = trials.c.state.in_(["COMPLETE", "FAIL", "PRUNED"])
    query = (
        select(studies.c.study_name, func.count(trials.c.trial_id))
        .select_from(
            studies.outerjoin(trials, (trials.c.study_id == studies.c.study_id) & finished)
        )
        .where(studies.c.study_name.startswith(search + "/", autoescape=True))
        .group_by(studies.c.study_name)
    )
    with engine.connect() as conn:
        return {name.split("/", 1)[1]: int(n) for name, n in conn.execute(query)}
