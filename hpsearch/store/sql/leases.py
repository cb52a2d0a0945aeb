"""Leases, and the writes they fence: one preparer per stage, and an editor of the spec,
whose slots and attrs go in only while it still holds its lease."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, inspect, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from hpsearch.store.sql.rows import (
    STUDY_ATTRS,
    insert_slots,
    last_trial_id,
    lock_study,
    slot_numbers,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from hpsearch.core.space import SearchSpace
    from hpsearch.store.model import NewSlot

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


#: Engines whose lease table is known to exist: created once per process, not per poll.
_lease_tables: weakref.WeakSet[Engine] = weakref.WeakSet()


def _create_lease_table(engine: Engine) -> None:
    """Create the lease table if missing (once per engine). Workers started together race
    to create it, and ``checkfirst`` is no lock (PostgreSQL answered the loser with
    DuplicateObject / UniqueViolation): whoever loses finds the table there, which is all
    it wanted."""
    if engine in _lease_tables:
        return
    try:
        _metadata.create_all(engine, checkfirst=True)
    except DBAPIError:
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


@dataclass
class Known:
    """What an enqueue has seen of a stage's slots, carried from batch to batch so that
    each batch reads only the trials added since the last (a full read per batch made
    preparation quadratic: 80 slots/s at a million)."""

    slots: set[int] = field(default_factory=set)
    last_trial_id: int = -1  # -1: nothing read yet


def enqueue_slots(
    engine: Engine,
    study_id: int,
    slots: list[NewSlot],
    space: SearchSpace,
    lease: Lease,
    known: Known | None = None,
) -> int:
    """Insert the slots that the study does not have yet, fenced by ``lease``.

    One transaction: renew the lease (a stale token raises :class:`LeaseLost` before
    anything is written, and the renewal's row lock orders this transaction after a
    take-over), read which slot numbers exist (with ``known``, only those of the trials
    added since the caller's last batch, which also holds re-queued copies and appended
    slots written by others meanwhile), insert the missing ones with their params
    (``space`` gives their distributions). Returns how many were inserted.
    """
    known = known if known is not None else Known()
    with engine.begin() as conn:
        lease.renew(conn)
        after = max(known.last_trial_id, 0)
        seen = known.slots | slot_numbers(conn, study_id, after=after)
        todo = [s for s in slots if s.slot not in seen]
        if todo:
            insert_slots(conn, study_id, lock_study(conn, study_id), todo, space)
        last = last_trial_id(conn, study_id)
    # only once committed: a batch rolled back and retried reads again from ``after``
    known.slots = seen | {s.slot for s in todo}
    known.last_trial_id = last
    return len(todo)


def set_study_attrs(engine: Engine, study_id: int, attrs: dict[str, Any], lease: Lease) -> None:
    """Write study user attrs in one transaction fenced by ``lease`` (see enqueue_slots):
    a preparer that lost its lease cannot overwrite what the new holder wrote."""
    table = STUDY_ATTRS
    with engine.begin() as conn:
        lease.renew(conn)
        for key, value in attrs.items():
            conn.execute(table.delete().where(table.c.study_id == study_id, table.c.key == key))
            conn.execute(
                table.insert().values(study_id=study_id, key=key, value_json=json.dumps(value))
            )


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
    table = STUDY_ATTRS
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
