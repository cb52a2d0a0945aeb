"""The network side of a database server: how long silence lasts, and how many connections.

**Silence.** A route to PostgreSQL can go dark with its sockets open (a dead NAT, a
partition, a frozen pooler): nothing is refused, nothing answers, and a blocked call
waits forever unless something bounds it. One number bounds it, the *unreachable bound*
``$HPSEARCH_UNREACHABLE_S`` (default 60 s, 5 to 3600): within it a storage that stopped
answering is declared unreachable (a worker's calls raise ``StorageUnreachable``; a
launcher stops its workers and exits 1 naming the storage). Every other limit derives
from it (:class:`Limits`):

- ``connect_timeout``: a connection not established within a sixth of it (10 s by default);
- TCP keepalives: an idle connection whose peer vanished is found within 25 s;
- ``tcp_user_timeout``: sent data unacknowledged for a quarter of it (15 s) drops the
  connection (the kernel's own retransmission limit is about 15 minutes);
- ``statement_timeout``: the server ends a statement running past half of it less 2 s
  (28 s);
- a *stall guard* on the client: a connection checked out of the pool and silent past
  half of it (30 s), or past the deadline of the retry loop that holds it, has
  its socket shut down, so that the blocked call fails (a transient error, retried) even
  where the peer's kernel still acknowledges every packet (a frozen proxy or pooler).

**Footprint.** Each process holds at most :data:`MAX_CONNECTIONS` (2) connections to a
PostgreSQL storage, whatever it does: every store the process opens on one URL shares one
Optuna storage (:func:`shared_storage`, as on SQLite), whose pool keeps one connection open and opens a
second only while two threads use the database at once (a worker's trial and its
heartbeat; a launcher's progress and its checks). A QueuePool, not a NullPool: a
connection per call would cost a connect (and TLS and authentication) several times a
trial. 32 workers and their launcher need at most 66 connections, within PostgreSQL's
default ``max_connections`` of 100.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from hpsearch.core.errors import UserError
from hpsearch.store.urls import is_sqlite, mask_url

log = logging.getLogger(__name__)
T = TypeVar("T")

ENV_UNREACHABLE = "HPSEARCH_UNREACHABLE_S"
DEFAULT_UNREACHABLE_S = 60.0
UNREACHABLE_RANGE = (5.0, 3600.0)
#: Connections one process holds to one PostgreSQL storage, at most: the pool keeps
#: ``POOL_SIZE`` open and opens ``MAX_OVERFLOW`` more only while they are all in use.
POOL_SIZE = 1
MAX_OVERFLOW = 1
MAX_CONNECTIONS = POOL_SIZE + MAX_OVERFLOW
#: How long a thread waits for a pooled connection while both are in use (then retried).
POOL_TIMEOUT_S = 30.0


class BadUnreachableBound(UserError):
    """``$HPSEARCH_UNREACHABLE_S`` is not a number of seconds in range."""


def unreachable_s() -> float:
    """The unreachable bound in seconds: ``$HPSEARCH_UNREACHABLE_S``, else 60."""
    raw = os.environ.get(ENV_UNREACHABLE, "").strip()
    if not raw:
        return DEFAULT_UNREACHABLE_S
    low, high = UNREACHABLE_RANGE
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (low <= value <= high):
        raise BadUnreachableBound(
            f"${ENV_UNREACHABLE}={raw!r}: expected seconds from {low:g} to {high:g} (how long "
            f"a silent storage is waited for before it is declared unreachable; default "
            f"{DEFAULT_UNREACHABLE_S:g})"
        )
    return value


@dataclass(frozen=True)
class Limits:
    """Every time limit on a PostgreSQL connection, derived from the unreachable bound."""

    unreachable_s: float

    @property
    def connect_timeout_s(self) -> int:
        return int(min(10, max(2, self.unreachable_s // 6)))

    @property
    def keepalives(self) -> tuple[int, int, int]:
        """(idle, interval, count) seconds: a dead peer is found after idle + interval x
        count without an answer (10 + 5 x 3 = 25 s by default)."""
        return (
            int(max(1, self.unreachable_s // 6)),
            int(max(1, self.unreachable_s // 12)),
            3,
        )

    @property
    def tcp_user_timeout_ms(self) -> int:
        return int(self.unreachable_s * 1000 / 4)

    @property
    def statement_timeout_ms(self) -> int:
        return int(max(1.0, self.unreachable_s / 2 - 2) * 1000)

    @property
    def stall_s(self) -> float:
        """A checked-out connection silent this long is cut (past the server's own
        statement timeout, so that a slow statement is ended by the server first)."""
        return self.unreachable_s / 2

    @property
    def silent_budget_s(self) -> float:
        """How long a retry loop goes on while every attempt meets silence (no answer,
        connect timeouts, cut connections): what is left of the bound once the last
        attempt's connect timeout, the last backoff and a process's way out (its heartbeat
        thread's cut, its exit: measured about 6 s) are allowed for."""
        return max(1.0, self.unreachable_s - self.connect_timeout_s - 6)


def limits() -> Limits:
    return Limits(unreachable_s())


def engine_kwargs(
    url: str, *, idle_in_transaction_ms: int, lock_timeout_ms: int
) -> dict[str, Any]:
    """SQLAlchemy engine options for ``url``: ``pool_pre_ping`` everywhere (a dropped
    connection is found before it is used), SQLite's busy timeout, and for PostgreSQL the
    limits of :class:`Limits` (as libpq parameters and session settings), the session
    timeouts the store asks for, and the small guarded pool of the module docstring."""
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if is_sqlite(url):
        kwargs["connect_args"] = {"timeout": 60}
    elif url.startswith("postgresql"):
        lim = limits()
        idle, interval, count = lim.keepalives
        kwargs["connect_args"] = {
            "connect_timeout": lim.connect_timeout_s,
            "keepalives": 1,
            "keepalives_idle": idle,
            "keepalives_interval": interval,
            "keepalives_count": count,
            "tcp_user_timeout": lim.tcp_user_timeout_ms,
            # pg_stat_activity shows whose each connection is (a URL's own name wins)
            "application_name": _query(url).get("application_name") or f"hpsearch:{os.getpid()}",
            "options": f"-c idle_in_transaction_session_timeout={idle_in_transaction_ms} "
            f"-c lock_timeout={lock_timeout_ms} "
            f"-c statement_timeout={lim.statement_timeout_ms}",
        }
        kwargs.update(
            poolclass=guarded_pool_class(url),
            pool_size=POOL_SIZE,
            max_overflow=MAX_OVERFLOW,
            pool_timeout=POOL_TIMEOUT_S,
        )
    return kwargs


def _query(url: str) -> dict[str, Any]:
    from sqlalchemy.engine import make_url

    try:
        return dict(make_url(url).query)
    except Exception:
        return {}


# -- one Optuna storage per process and URL ----------------------------------------------

_STORAGES: dict[tuple[int, str, tuple[int, int] | None], Any] = {}
_STORAGES_LOCK = threading.Lock()


def shared_storage(
    url: str, create: Callable[[], T], *, readonly: bool, sqlite_file: Path | None = None
) -> T:
    """The process's Optuna storage for ``url``, made by ``create`` the first time.

    Each ``SearchStore.open`` made its own: on PostgreSQL (and MySQL) its own engine and
    pool, so that a launcher held 12 connections and a worker 4; on SQLite its own schema
    check (Optuna's alembic revision, read in the storage's constructor: 0.2-1.2 s each,
    five times in one launch). A storage first opened read-only gets Optuna's tables
    checked (created if missing) when a writer asks for it. An SQLite storage is the
    process's for that file (``sqlite_file``, by device and inode): a file deleted or
    replaced since gets a storage of its own, never the old file's open connections.
    """
    key = (os.getpid(), url, _identity(sqlite_file))
    with _STORAGES_LOCK:
        found = _STORAGES.get(key)
        if found is not None:
            storage, was_readonly = found
            if was_readonly and not readonly:
                from optuna.storages._rdb import models

                models.BaseModel.metadata.create_all(storage.engine)
                _STORAGES[key] = (storage, False)
            return storage
        storage = create()
        # a new SQLite file is there now: the next open finds it under its inode
        _STORAGES[(os.getpid(), url, _identity(sqlite_file))] = (storage, readonly)
        return storage


def _identity(path: Path | None) -> tuple[int, int] | None:
    """An SQLite file's (device, inode); None for a server's URL or a file not there yet."""
    if path is None:
        return None
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_dev, found.st_ino


def release_idle(url: str) -> None:
    """Close this process's idle connections to ``url`` (before a child process that
    uses the storage runs while this one waits: the footprint stays 2 between them)."""
    found = _STORAGES.get((os.getpid(), url, None))
    if found is None:
        return
    pool = found[0].engine.pool
    while True:
        try:
            record = pool._pool.get(False)
        except Exception:  # queue.Empty: none idle
            return
        record.close()
        pool._dec_overflow()


# -- the stall guard ---------------------------------------------------------------------

_local = threading.local()


@contextlib.contextmanager
def deadline(at: float) -> Iterator[None]:
    """Within the block, a connection this thread checks out is cut once past ``at``
    (``time.monotonic``), as well as once silent past ``Limits.stall_s``."""
    stack = _local.__dict__.setdefault("deadlines", [])
    stack.append(min([at, *stack]))
    try:
        yield
    finally:
        stack.pop()


def take_cut() -> bool:
    """Whether the guard cut a connection of this thread since the last call: the error
    that followed was silence, not an answer."""
    cut = getattr(_local, "cut", False)
    _local.cut = False
    return cut


def current_storage() -> str | None:
    """The masked URL of the PostgreSQL storage this thread used last, for messages."""
    return getattr(_local, "storage", None)


@dataclass
class _Busy:
    since: float
    until: float  # the deadline of the retry loop that checked it out
    local: threading.local
    record: Any
    cut: bool = False


_BUSY: dict[int, _Busy] = {}
_BUSY_LOCK = threading.Lock()
_WATCHDOG: list[threading.Thread] = []


def _watchdog() -> None:
    while True:
        time.sleep(0.25)
        stall = limits().stall_s
        now = time.monotonic()
        with _BUSY_LOCK:
            late = [b for b in _BUSY.values() if not b.cut and now > min(b.since + stall, b.until)]
            for b in late:
                b.cut = True
        for b in late:
            _cut(b, now)


def _cut(busy: _Busy, now: float) -> None:
    """Shut the connection's socket down: the call blocked on it fails at once."""
    conn = busy.record.dbapi_connection
    try:
        fd = os.dup(conn.fileno())
    except Exception:  # no connection, or closed meanwhile
        return
    try:
        with socket.socket(fileno=fd) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    busy.local.cut = True
    log.warning(
        "no answer from the database for %.0f s: dropped the connection (retried)",
        now - busy.since,
    )


def _start_watchdog() -> None:
    with _BUSY_LOCK:
        if not (_WATCHDOG and _WATCHDOG[0].is_alive()):
            thread = threading.Thread(target=_watchdog, name="hpsearch-stall-guard", daemon=True)
            thread.start()
            _WATCHDOG[:] = [thread]


_POOL_CLASSES: dict[str, type] = {}


def guarded_pool_class(url: str) -> type:
    """A QueuePool whose checked-out connections the stall guard watches (one class per
    URL, which it names in messages)."""
    shown = mask_url(url)
    if shown in _POOL_CLASSES:
        return _POOL_CLASSES[shown]
    from sqlalchemy.pool import QueuePool

    class GuardedPool(QueuePool):
        storage = shown

        def _do_get(self) -> Any:
            record = super()._do_get()
            stack = _local.__dict__.get("deadlines")
            until = stack[-1] if stack else math.inf
            _local.storage = self.storage
            with_busy = _Busy(time.monotonic(), until, _local, record)
            _start_watchdog()
            with _BUSY_LOCK:
                _BUSY[id(record)] = with_busy
            return record

        def _do_return_conn(self, record: Any) -> None:
            with _BUSY_LOCK:
                _BUSY.pop(id(record), None)
            super()._do_return_conn(record)

    _POOL_CLASSES[shown] = GuardedPool
    return GuardedPool
