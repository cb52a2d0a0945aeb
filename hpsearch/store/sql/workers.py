"""Workers attached to a search, and the clock their heartbeats are read with.

A worker keeps one row here (``hpsearch_workers``) for as long as it is on a search,
beating it between trials, while it prepares a stage and while it waits at a stage
barrier, not only while a trial runs: ``hpsearch delete`` refuses a search with a live
worker, and decides that in the transaction that deletes (:func:`delete_unless_live`).

Every time here is the database's clock, read so that no session's time zone enters it:
an epoch (seconds since 1970, UTC) for the worker rows, and UTC wall time for Optuna's
``timestamp without time zone`` heartbeat column (``clock.utc_now_sql``). PostgreSQL's
``CURRENT_TIMESTAMP`` stored into that column is the *session's* local time, so a worker
whose session ran in UTC-10 looked ten hours stale to the others.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from sqlalchemy import (
    Column,
    Float,
    MetaData,
    String,
    Table,
    bindparam,
    inspect,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError

from hpsearch.store.sql.clock import epoch_sql
from hpsearch.store.sql.reads import STUDIES, live_in

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.sql.elements import ColumnElement

_metadata = MetaData()
workers = Table(
    "hpsearch_workers",
    _metadata,
    Column("search", String(512), primary_key=True),
    Column("worker", String(255), primary_key=True),
    Column("beat", Float, nullable=False),  # the database's epoch at the last beat
)

_tables: weakref.WeakSet[Engine] = weakref.WeakSet()


def _create_table(engine: Engine) -> None:
    """Create the table if missing, once per engine (a lost creation race is fine)."""
    if engine in _tables:
        return
    try:
        _metadata.create_all(engine, checkfirst=True)
    except DBAPIError:
        if not inspect(engine).has_table(workers.name):
            raise
    _tables.add(engine)


def _studies(conn: Connection, search: str, *, update: bool) -> dict[str, int]:
    """The search's studies, locked on PostgreSQL: shared by an attaching worker,
    exclusive by a delete, so that the two are ordered (SQLite has one writer at a time)."""
    name = STUDIES.c.study_name  # a baseline is worked on by its full name, NAME/method
    query = select(name, STUDIES.c.study_id).where(
        or_(name == search, name.startswith(search + "/", autoescape=True))
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(read=not update)
    return {name: int(i) for name, i in conn.execute(query)}


def attach(engine: Engine, search: str, worker: str) -> bool:
    """Register ``worker`` on ``search`` with a fresh beat; False if the search is gone
    (deleted before the worker got here: nothing is written)."""
    _create_table(engine)
    with engine.begin() as conn:
        if conn.dialect.name != "postgresql":  # take SQLite's write lock first
            conn.execute(
                workers.delete().where(workers.c.search == search, workers.c.worker == worker)
            )
        if not _studies(conn, search, update=False):
            return False
        # An upsert, not delete-then-insert: two threads of one process (one worker id)
        # attaching at once both found no row under READ COMMITTED and both inserted.
        conn.execute(
            text(
                "INSERT INTO hpsearch_workers (search, worker, beat) "
                f"VALUES (:s, :w, {epoch_sql(conn)}) "
                "ON CONFLICT (search, worker) DO UPDATE SET beat = excluded.beat"
            ),
            {"s": search, "w": worker},
        )
    return True


def beat(engine: Engine, search: str, worker: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                f"UPDATE hpsearch_workers SET beat = {epoch_sql(conn)} WHERE search = :s AND worker = :w"
            ),
            {"s": search, "w": worker},
        )


def detach(engine: Engine, search: str, worker: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            workers.delete().where(workers.c.search == search, workers.c.worker == worker)
        )


def live_workers(conn: Connection, search: str, grace_period: float) -> list[str]:
    """The workers on ``search`` that beat within ``grace_period`` seconds."""
    cutoff = literal_column(epoch_sql(conn), Float) - float(grace_period)
    rows = conn.execute(
        select(workers.c.worker)
        .where(_on(search), workers.c.beat > cutoff)
        .order_by(workers.c.worker)
    )
    return [row[0] for row in rows]


def _on(search: str) -> ColumnElement[bool]:
    """The rows of workers on ``search`` or on one of its baselines (``NAME/method``)."""
    column = workers.c.search
    return or_(column == search, column.startswith(search + "/", autoescape=True))


def live_on(engine: Engine, search: str, grace_period: float) -> list[str]:
    """:func:`live_workers`, for a reader (none while the table does not exist yet)."""
    if engine not in _tables and not inspect(engine).has_table(workers.name):
        return []
    with engine.connect() as conn:
        return live_workers(conn, search, grace_period)


def delete_unless_live(
    engine: Engine, search: str, grace_period: float, *, force: bool
) -> tuple[list[str], list[str], int]:
    """Delete every study of ``search`` unless a worker is live on it (see
    :func:`live_workers`; a RUNNING trial with a fresh heartbeat counts too), in one
    transaction: ``(deleted names, live workers, live trials)``, nothing deleted when
    either is non-empty and not ``force``.

    On PostgreSQL the studies are locked first (a worker attaching meanwhile waits, and
    then finds the search gone); on SQLite the first statement is a write, which takes
    the database's single write lock before anything is read."""
    _create_table(engine)
    with engine.begin() as conn:
        if conn.dialect.name != "postgresql":
            conn.execute(
                text(
                    f"DELETE FROM hpsearch_workers WHERE search = :s AND beat < {epoch_sql(conn)} - 86400"
                ),
                {"s": search},
            )
        found = _studies(conn, search, update=True)
        if not found:
            return [], [], 0
        live = [] if force else live_workers(conn, search, grace_period)
        running = 0 if force else sum(live_in(conn, i, grace_period) for i in found.values())
        if live or running:
            return [], live, running
        delete_rows(conn, list(found.values()))
        conn.execute(workers.delete().where(_on(search)))
    return sorted(found), [], 0


#: Optuna's tables that hang off a trial, then off a study: deleted child first.
TRIAL_TABLES = (
    "trial_params",
    "trial_values",
    "trial_intermediate_values",
    "trial_user_attributes",
    "trial_system_attributes",
    "trial_heartbeats",
)
STUDY_TABLES = ("trials", "study_user_attributes", "study_system_attributes", "study_directions")


def delete_rows(conn: Connection, study_ids: list[int]) -> None:
    """Delete these studies and every row that hangs off them, in ``conn``'s transaction
    (what Optuna's ORM cascade does, as plain statements)."""

    def run(sql: str) -> None:
        conn.execute(text(sql).bindparams(bindparam("ids", expanding=True)), {"ids": study_ids})

    trials = "SELECT trial_id FROM trials WHERE study_id IN :ids"
    for table in TRIAL_TABLES:
        run(f"DELETE FROM {table} WHERE trial_id IN ({trials})")
    for table in STUDY_TABLES:
        run(f"DELETE FROM {table} WHERE study_id IN :ids")
    run("DELETE FROM studies WHERE study_id IN :ids")
