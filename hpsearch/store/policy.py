"""The one retry policy for every database call hpsearch makes.

A database error is one of three kinds, decided here and nowhere else:

- **transient**: retrying cures it. A dropped connection (``pg_terminate_backend``, a
  server restart, a network blip: psycopg's ``AdminShutdown``, "server closed the
  connection", "connection refused"), ``PendingRollbackError`` (SQLAlchemy's word for a
  session whose connection dropped mid-transaction), serialization failures and deadlocks
  (PostgreSQL aborts one side and asks for a retry), a lock or idle-in-transaction timeout
  (hpsearch sets both, so that a frozen process cannot hold the search hostage), and
  SQLite's "database is locked". Retried with exponential backoff up to a deadline
  (workers outlive a restart of half a minute; one-shot commands give up sooner).
- **unusable**: the URL points at something that will never work, so waiting is wrong:
  an SQLite file that cannot be opened (its folder does not exist), a database or role
  that does not exist, a failed authentication, a file that is not a database, a read-only
  file opened for writing. Raised at once as :class:`StorageUnusable` (exit code 2) with
  one line that names the fix.
- **broken**: a database that was usable but is damaged (a malformed SQLite file; a
  "disk I/O error", which SQLite answers every call with once its ``-wal`` or ``-shm``
  file was removed under the processes that had them open, and which no wait cures), or
  any other error: raised at once as :class:`StorageBroken` (exit code 1).

Optuna wraps SQLAlchemy errors raised inside its sessions in ``StorageInternalError``;
the wrapped error (``__cause__``) is what is judged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from hpsearch.core.errors import UserError

log = logging.getLogger(__name__)
T = TypeVar("T")


class StorageUnusable(UserError):
    """The storage URL cannot be used at all; the message says what to fix (exit 2)."""


class StorageBroken(RuntimeError):
    """The database answered with a permanent error, e.g. a damaged file (exit 1)."""


class StorageUnreachable(StorageBroken):
    """The database did not answer, or kept failing transiently, past the retry deadline
    (or past the unreachable bound of ``hpsearch.store.network`` when it was silent)."""


#: PostgreSQL SQLSTATEs that a retry cures (class 08 connection exceptions are matched as a
#: class below): serialization failure, deadlock, lock not available, query canceled (our
#: lock_timeout), idle-in-transaction timeout, admin/crash shutdown, cannot connect now.
TRANSIENT_SQLSTATES = {
    "40001",
    "40P01",
    "55P03",
    "57014",
    "25P03",
    "57P01",
    "57P02",
    "57P03",
    "53300",  # too many connections: the server's max_connections, or a CONNECTION LIMIT
}

#: Message fragments (lower case) of errors that never go away by waiting, with the fix.
UNUSABLE = (
    ("unable to open database file", "cannot open the SQLite file"),
    ("file is not a database", "the file is not an SQLite database"),
    ("attempt to write a readonly database", "the database is read-only"),
    ("authentication failed", "authentication failed"),
    ("no password supplied", "authentication failed (no password supplied)"),
    ("permission denied", "permission denied"),
)
#: SQLite's word for a failing disk or a -wal/-shm file removed under it (``sqlite_io_error``).
SQLITE_IO_ERROR = "disk i/o error"
BROKEN = ("database disk image is malformed", "malformed database schema", SQLITE_IO_ERROR)
TRANSIENT = (
    "database is locked",
    "database table is locked",
    "server closed the connection",
    "connection refused",
    "terminating connection",
    "could not connect",
    "connection reset",
    "connection is closed",
    "connection already closed",
    "the database system is starting up",
    "the database system is shutting down",
    "ssl syscall error",
    "consuming input failed",
    "could not receive data",
    "could not send data",
    "timeout expired",
    "lock timeout",
    "deadlock detected",
    "could not serialize",
    "too many clients",
    "too many connections",
    "connection slots are reserved",
    "timed out",
)
#: Errors that are silence, not an answer: the unreachable bound counts them.
SILENT = ("timeout expired", "timed out")
#: Transient causes worth a sentence of their own in warnings and the final error.
HINTS = (
    (
        ("too many clients", "too many connections", "connection slots are reserved"),
        "the server has no connection slot free (its max_connections, or a CONNECTION "
        "LIMIT on the role or database); each hpsearch process holds at most 2: raise the "
        "limit or run fewer workers",
    ),
)


def error_kind(exc: BaseException) -> str | None:
    """``"transient"``, ``"unusable"``, ``"broken"``, or None for an error that is not a
    database error at all (it is the caller's, e.g. a bug in an objective)."""
    from optuna.exceptions import StorageInternalError
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, StorageUnusable):
        return "unusable"
    if isinstance(exc, StorageBroken):
        return "broken"
    if isinstance(exc, StorageInternalError):
        if exc.__cause__ is not None:
            return error_kind(exc.__cause__)
        return "broken"
    if isinstance(exc, sa_exc.PendingRollbackError):
        return "transient"
    if not isinstance(exc, sa_exc.SQLAlchemyError):
        return _driver_error_kind(exc)
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return "transient"
        kind = _driver_error_kind(exc.orig) if exc.orig is not None else None
        if kind is not None:
            return kind
        if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
            return "transient"  # a connection problem that no message above named
        return "broken"
    if isinstance(exc, sa_exc.TimeoutError):  # the pool had no free connection in time
        return "transient"
    return None  # ArgumentError and friends: programming or URL errors, raised as they are


def _driver_error_kind(exc: BaseException) -> str | None:
    """Judge a DB-API error (sqlite3, psycopg) by its SQLSTATE and message."""
    sqlstate = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    if sqlstate and (sqlstate in TRANSIENT_SQLSTATES or sqlstate.startswith("08")):
        return "transient"
    module = type(exc).__module__
    if not (module.startswith("sqlite3") or module.startswith("psycopg")):
        return None
    text = str(exc).lower()
    if any(s in text for s in BROKEN):
        return "broken"
    if any(s in text for s in TRANSIENT):
        return "transient"
    if any(s in text for s, _ in UNUSABLE) or _missing_database_or_role(text):
        return "unusable"
    return None


def sqlite_io_error(path: Path, why: str) -> str | None:
    """What the error ``why`` on the SQLite file ``path`` means when it is a "disk I/O
    error", naming the files (None for any other error). SQLite
    gives it to a new connection once the ``-wal`` or ``-shm`` file was removed under the
    processes that had them open (which write on, unseen; the new connection may already
    have made a fresh one, so a missing file is named when there is one), or on a failing
    disk: never cured by waiting."""
    if SQLITE_IO_ERROR not in why.lower():
        return None
    wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
    gone = [str(p) for p in (path, wal, shm) if not p.exists()]
    seen = f"; {' and '.join(gone)} {'is' if len(gone) == 1 else 'are'} missing" if gone else ""
    return (
        f"disk I/O error on the SQLite database {path} ({why}{seen}): its write-ahead log "
        f"{wal} or index {shm} was removed while the search ran, or the disk failed. Stop "
        "every process on it and check the search (hpsearch status) before launching "
        "again: what was written since its last checkpoint may be lost"
    )


def _missing_database_or_role(text: str) -> bool:
    # Only at connection time: 'database "x" does not exist', 'role "u" does not exist'.
    # A missing *table* (42P01, a schema being created by another worker) is not this.
    return "does not exist" in text and ('database "' in text or 'role "' in text)


def sqlalchemy_error(
    exc: BaseException, mask: Callable[[str], str]
) -> StorageUnusable | StorageBroken | None:
    """A SQLAlchemy error raised outside the store's calls (a URL it cannot parse, a
    driver that is not installed, a connection refused while a command opens the
    database) as the store's own kinds, with its first line ``mask``-ed: unusable for a
    URL that cannot work, broken for the rest; None for an error that is not SQLAlchemy's.
    Judged by its module and class name, so that nothing is imported to judge it."""
    if not type(exc).__module__.startswith("sqlalchemy"):
        return None
    first = mask(str(exc).splitlines()[0])
    if type(exc).__name__ in ("ArgumentError", "NoSuchModuleError"):
        return StorageUnusable(
            f"--storage: cannot use this URL ({first}); expected e.g. "
            "sqlite:///hpsearch.db or postgresql://user@host:5432/db"
        )
    return StorageBroken(f"database error: {first}")


def reason(exc: BaseException) -> str:
    """The first line of the underlying driver's message: what a person needs to read."""
    inner: BaseException = exc
    while inner.__cause__ is not None and type(inner).__module__.startswith("optuna"):
        inner = inner.__cause__
    orig = getattr(inner, "orig", None) or inner
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    return lines[0] if lines else type(orig).__name__


def hint(exc: BaseException) -> str:
    """The reason of a transient error, with what it means where that is not obvious."""
    why = reason(exc)
    low = why.lower()
    for fragments, text in HINTS:
        if any(f in low for f in fragments):
            return f"{why}: {text}"
    return why


def _silent(exc: BaseException) -> bool:
    """The error was silence (a timeout, a connection the stall guard cut)."""
    from hpsearch.store import network

    cut = network.take_cut()
    return cut or any(s in reason(exc).lower() for s in SILENT)


def with_retries(
    fn: Callable[[], T],
    *,
    what: str,
    deadline_s: float,
    on_permanent: Callable[[BaseException, str], BaseException],
    first_wait: float = 0.2,
) -> T:
    """Run ``fn``; retry transient errors with backoff for ``deadline_s``.

    A permanent error (unusable or broken) is turned into the exception
    ``on_permanent(exc, kind)`` builds (the store adds its masked URL and the fix) and
    raised at once; an error that is no database error propagates unchanged. Attempts
    that meet only silence (no answer at all) give up sooner, within the unreachable
    bound (``hpsearch.store.network``): a connection held past ``deadline_s`` is cut.
    Past either limit :class:`StorageUnreachable` names the storage.
    """
    from hpsearch.store import network
    from hpsearch.store.urls import mask_text

    wait, start = first_wait, time.monotonic()
    silent_since: float | None = None
    budget = network.limits().silent_budget_s
    network.take_cut()
    while True:
        attempt = time.monotonic()
        try:
            with network.deadline(start + deadline_s):
                return fn()
        except Exception as exc:
            kind = error_kind(exc)
            if kind is None:
                raise
            if kind != "transient":
                raise on_permanent(exc, kind) from exc
            now = time.monotonic()
            silent_since = (silent_since or attempt) if _silent(exc) else None
            silent = silent_since is not None and now - silent_since + wait > budget
            if now - start > deadline_s or silent:
                where = network.current_storage() or "the database"
                raise StorageUnreachable(
                    mask_text(
                        f"{what}: the storage {where} stayed unreachable for "
                        f"{now - start:.0f} s ({hint(exc)})"
                    )
                ) from exc
            log.warning("%s failed (%s); retrying in %.1f s", what, mask_text(hint(exc)), wait)
            time.sleep(min(wait, max(0.0, start + deadline_s - now)))
            wait = min(wait * 2, 5.0)
