"""Atomic primitives that workers sharing one database coordinate through.

Two things Optuna does not give us safely across processes, written as single SQL
statements that every backend executes atomically:

- **claiming a slot**: ``Study.ask()`` pops WAITING trials with ``SELECT ... FOR UPDATE``,
  which SQLite ignores, so two SQLite workers were handed the same slot; and when no slot
  is left, ``ask()`` creates a brand-new trial, which breaks exact budgets. A conditional
  ``UPDATE ... WHERE state = 'WAITING'`` is a compare-and-swap on every backend, and the
  heartbeat row is written in the same transaction, so no claimed trial is ever without
  one (Optuna never fails a RUNNING trial that has no heartbeat row).
- **a lease**: one worker prepares a stage; if it dies, the lease expires and another
  takes over. Insert-if-absent and update-if-expired are both single statements.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, text
from sqlalchemy.exc import IntegrityError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

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


def _utcnow() -> datetime:
    # Optuna stores naive UTC datetimes.
    return datetime.now(UTC).replace(tzinfo=None)


def claim_slot(engine: Engine, study_id: int, *, heartbeat: bool) -> int | None:
    """Move one WAITING trial of the study to RUNNING and return its id, or None.

    Slots are taken in trial-id order, so one worker runs them in the order prepared.
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
            claimed = conn.execute(
                text(
                    "UPDATE trials SET state = 'RUNNING', datetime_start = :now "
                    "WHERE trial_id = :t AND state = 'WAITING'"
                ),
                {"t": trial_id, "now": _utcnow()},
            ).rowcount
            if claimed != 1:
                continue  # another worker won this one; try the next
            if heartbeat:
                conn.execute(
                    text("DELETE FROM trial_heartbeats WHERE trial_id = :t"), {"t": trial_id}
                )
                conn.execute(
                    text(
                        "INSERT INTO trial_heartbeats (trial_id, heartbeat) "
                        "VALUES (:t, CURRENT_TIMESTAMP)"
                    ),
                    {"t": trial_id},
                )
            return trial_id
    return None


def orphaned_trials(engine: Engine, study_id: int, grace_period: float) -> list[int]:
    """RUNNING trials with no heartbeat row, started more than ``grace_period`` ago.

    A worker killed between Optuna's claim and its first beat leaves such a trial, and
    Optuna's stale check skips trials without a heartbeat row: they would stay RUNNING
    forever and the stage would never end.
    """
    cutoff = _utcnow() - timedelta(seconds=grace_period)
    with engine.begin() as conn:
        rows = conn.execute(
            text(
                "SELECT t.trial_id FROM trials t LEFT JOIN trial_heartbeats h "
                "ON h.trial_id = t.trial_id WHERE t.study_id = :s AND t.state = 'RUNNING' "
                "AND h.trial_id IS NULL AND t.datetime_start < :cutoff"
            ),
            {"s": study_id, "cutoff": cutoff},
        )
        return [row[0] for row in rows]


def _create_lease_table(engine: Engine) -> None:
    """Create the lease table if missing. Workers started together race to create it, and
    ``checkfirst`` is no lock (PostgreSQL answered the loser with DuplicateObject /
    UniqueViolation): whoever loses finds the table there, which is all it wanted."""
    from sqlalchemy.exc import DBAPIError

    try:
        _metadata.create_all(engine, checkfirst=True)
    except DBAPIError:
        from sqlalchemy import inspect

        if not inspect(engine).has_table(leases.name):
            raise


class LeaseLost(RuntimeError):
    """Another worker took the lease over: stop writing under it."""


class Lease:
    """A named, expiring lock in the database, with a fencing token.

    ``acquire`` succeeds if nobody holds the name or the holder's lease expired (it died or
    froze); the token grows on every take-over, so a holder that wakes up after losing the
    lease sees :class:`LeaseLost` at its next :meth:`check` instead of writing on.
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
            taken = conn.execute(
                leases.update()
                .where(leases.c.name == self.name, leases.c.token == row.token)
                .values(owner=self.owner, token=row.token + 1, expires_at=now + self.duration_s)
            ).rowcount
        if taken == 1:
            log.warning("took over expired lease %s from %s", self.name, row.owner)
            self.token = row.token + 1
            return True
        return False

    def check(self) -> None:
        """Renew the lease, or raise LeaseLost if someone took it over."""
        with self.engine.begin() as conn:
            renewed = conn.execute(
                leases.update()
                .where(leases.c.name == self.name, leases.c.token == self.token)
                .values(expires_at=time.time() + self.duration_s)
            ).rowcount
        if renewed != 1:
            raise LeaseLost(f"lease {self.name} was taken over by another worker")

    def release(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                leases.delete().where(leases.c.name == self.name, leases.c.token == self.token)
            )
        self.token = None
