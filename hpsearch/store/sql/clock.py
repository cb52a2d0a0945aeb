"""The clocks the rows are written and compared with: Optuna's local wall time for a
trial's start and end, the database's own clock for heartbeats. No Optuna here: the
readers (``reads``) use these too."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


def now() -> datetime:
    # Optuna writes datetime_start and datetime_complete as naive *local* time
    # (``datetime.now()``); the rows written here follow it, so that durations in reports
    # and the dashboard hold whichever path wrote a trial.
    return datetime.now()


def epoch_sql(conn: Connection) -> str:
    """SQL for the database's clock as an epoch: the same in every session's time zone."""
    if conn.dialect.name == "postgresql":
        return "EXTRACT(EPOCH FROM CURRENT_TIMESTAMP)"
    return "((julianday('now') - 2440587.5) * 86400.0)"


def utc_now_sql(conn: Connection) -> str:
    """SQL for the database's clock as naive UTC wall time: what heartbeats store, in
    Optuna's ``timestamp without time zone`` column, and are compared with. PostgreSQL's
    bare ``CURRENT_TIMESTAMP`` stored there is the *session's* local time, so a worker whose
    session ran in another time zone looked hours stale (or fresh) to the others."""
    if conn.dialect.name == "postgresql":
        return "(CURRENT_TIMESTAMP AT TIME ZONE 'UTC')"
    return "CURRENT_TIMESTAMP"  # SQLite's is UTC


def as_datetime(value: Any) -> datetime:
    """A naive datetime from a row: SQLite hands raw ``text()`` columns back as strings."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=None)
