"""Opening a search database, and what every store call shares: the retry policy with its
one-line errors, and the stage studies every concern of the store reads.

Two classes: :class:`StoreCore`, a database under the policy, read in plain SQL
(``sql.reads``) with no Optuna imported, which :class:`~hpsearch.store.reading.SearchReader`
builds on for the commands that only look; and :class:`StoreBase`, the same with Optuna's
storage opened on it, which the concerns of :class:`~hpsearch.store.SearchStore` that
write build on. Optuna is imported only by :class:`StoreBase`'s methods.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Self, TypeVar

from sqlalchemy import exc as sa_exc

from hpsearch.store import network, policy
from hpsearch.store.model import Stage, StageRef, stage_study_name
from hpsearch.store.policy import StorageBroken, StorageUnusable
from hpsearch.store.sql import reads
from hpsearch.store.urls import mask_text, mask_url, sqlite_path

if TYPE_CHECKING:
    import optuna
    from optuna.storages import RDBStorage
    from sqlalchemy.engine import Engine

    from hpsearch.core.spec import StudySpec

T = TypeVar("T")
P = ParamSpec("P")

#: How long a worker, and every read the run of one makes (its spec, whether it stopped),
#: waits for an unreachable database: long enough to outlive a server restart. One-shot
#: commands give up sooner (``hpsearch.api.COMMAND_WAIT_S``).
WORKER_WAIT_S = 120.0
#: PostgreSQL session limits, so that a frozen process (SIGSTOP, a swapped-out VM) cannot
#: hold row locks for the whole freeze and block every other worker: the server ends a
#: session idle inside a transaction after this long, and a statement waiting for a lock
#: gives up (a transient error, retried) instead of queueing behind it forever.
IDLE_IN_TRANSACTION_MS = 30_000
LOCK_TIMEOUT_MS = 15_000


def engine_kwargs(url: str) -> dict[str, Any]:
    """Engine options that Optuna leaves off (``network.engine_kwargs``): ``pool_pre_ping``,
    SQLite's busy timeout, and on PostgreSQL the session timeouts above, the network
    limits and the two-connection pool."""
    return network.engine_kwargs(
        url, idle_in_transaction_ms=IDLE_IN_TRANSACTION_MS, lock_timeout_ms=LOCK_TIMEOUT_MS
    )


def has_tables(url: str, *, unknown: bool = True) -> bool:
    """Whether the database at ``url`` holds Optuna's tables: a read for ``launch
    --dry-run``, which opens no store on a fresh database (a read-only store finds one
    without tables damaged), and for a relaunch's checks before it registers. A database
    that cannot be asked says ``unknown``: True for the dry run (opening the store then
    reports why, under the usual policy), False for a launch (nothing is checked ahead;
    registering, which creates the tables, waits for the database as it always did)."""
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url, **engine_kwargs(url))
    except sa_exc.SQLAlchemyError:
        return unknown
    try:
        return sa.inspect(engine).has_table("version_info")
    except sa_exc.SQLAlchemyError:
        return unknown
    finally:
        engine.dispose()


class StoreCore:
    """One open search database under one retry policy, read in plain SQL: no Optuna."""

    def __init__(self, url: str, *, wait_s: float, readonly: bool) -> None:
        self.url = url
        self.readonly = readonly
        self._wait_s = wait_s
        self._engine: Engine | None = None

    @classmethod
    def open(cls, url: str, *, wait_s: float = WORKER_WAIT_S, readonly: bool = False) -> Self:
        """Open the database at ``url``.

        ``readonly`` is for commands that only look (status, report, best, list, the
        dashboard): they never create a database (a missing SQLite file is an error that
        names it, not a new empty file), and a read-only SQLite file is opened read-only.
        A worker waits up to ``wait_s`` for a database that is restarting.
        """
        path = sqlite_path(url)
        open_url = url
        if path is not None:
            open_url = _check_sqlite_file(url, path, readonly)
        store = cls(url, wait_s=wait_s, readonly=readonly)
        for attempt in range(20):
            try:
                store._engine = store._retry(
                    lambda: store._connect(open_url, path), f"open storage {mask_url(url)}"
                )
                break
            except StorageBroken as exc:
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
                with store.engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA journal_mode=WAL")

            store._retry(wal, "set WAL mode")
        return store

    def _connect(self, open_url: str, path: Path | None) -> Engine:
        """The engine on ``open_url`` (the URL a read-only SQLite file is opened by)."""
        import sqlalchemy as sa

        return sa.create_engine(open_url, **engine_kwargs(self.url))

    @property
    def engine(self) -> Engine:
        assert self._engine is not None, "opened by open()"
        return self._engine

    def close(self) -> None:
        """Close this store's connections (a reader's; the writers' storage is the
        process's, shared by every store on the URL)."""
        self.engine.dispose()

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    # -- the policy ----------------------------------------------------------------------

    def _retry(self, fn: Callable[[], T], what: str) -> T:
        return policy.with_retries(
            fn, what=what, deadline_s=self._wait_s, on_permanent=self._permanent
        )

    def _sql(
        self,
        what: str,
        fn: Callable[Concatenate[Engine, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """``fn(engine, *args, **kwargs)``, one of :mod:`hpsearch.store.sql`'s statements
        or transactions, under the retry policy (a retry runs it whole again)."""
        engine = self.engine
        return self._retry(lambda: fn(engine, *args, **kwargs), what)

    def _permanent(self, exc: BaseException, kind: str) -> BaseException:
        """One line for a permanent error: the masked URL, what went wrong, the fix."""
        if isinstance(exc, StorageUnusable | StorageBroken):
            return exc
        why = mask_text(policy.reason(exc), self.url)
        where = f"--storage {self.masked_url}"
        path = sqlite_path(self.url)
        io_error = None if path is None else policy.sqlite_io_error(path, why)
        if io_error is not None:
            return StorageBroken(f"{where}: {io_error}")
        if kind == "broken":
            return StorageBroken(
                f"{where}: the database is damaged ({why}); restore it from a backup"
            )
        text = why.lower()
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

    # -- the stage studies ---------------------------------------------------------------

    def _studies(self) -> list[reads.StudyRow]:
        return self._sql("list studies", reads.studies)

    def find_stage(self, search: str, stage: str) -> StageRef | None:
        """The stage study, or None if that stage has not been created yet."""
        name = stage_study_name(search, stage)
        found = self._sql(f"load study {name}", reads.study_id, name)
        return None if found is None else StageRef(name, found)

    def stage_attrs(self, stage: StageRef) -> dict[str, Any]:
        return self._sql("read attrs", reads.study_attrs, stage.study_id)


class StoreBase(StoreCore):
    """:class:`StoreCore` with Optuna's storage on it (one per process and URL, see
    ``network.shared_storage``): what the concerns that write build on."""

    _rdb: RDBStorage

    def _connect(self, open_url: str, path: Path | None) -> Engine:
        import optuna
        from optuna.storages import RDBStorage

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        readonly, url = self.readonly, self.url
        self._rdb = network.shared_storage(  # one per process and URL (PostgreSQL: 2 connections)
            open_url,
            lambda: RDBStorage(
                open_url, engine_kwargs=engine_kwargs(url), skip_table_creation=readonly
            ),
            readonly=readonly,
            sqlite_file=path,
        )
        return self._rdb.engine

    def close(self) -> None:
        """Nothing to close: the storage is the process's, shared by its stores."""

    def dashboard_storage(self) -> RDBStorage:
        """The Optuna storage, for optuna-dashboard's WSGI app (which needs one)."""
        return self._rdb

    def _open_study(
        self, name: str, spec: StudySpec, sampler: optuna.samplers.BaseSampler | None
    ) -> Stage:
        import optuna
        from optuna.study import StudyDirection

        study = self._retry(
            lambda: optuna.create_study(
                storage=self._rdb,
                study_name=name,
                direction=StudyDirection[spec.direction.upper()],
                sampler=sampler,
                load_if_exists=True,
            ),
            f"open study {name}",
        )
        return Stage(name, self._retry(lambda: study._study_id, "study id"), study)

    def find_stage(self, search: str, stage: str) -> Stage | None:
        """The stage study, with Optuna's study in it, or None if that stage has not been
        created yet."""
        import optuna

        name = stage_study_name(search, stage)

        def load() -> optuna.Study | None:
            try:
                return optuna.load_study(study_name=name, storage=self._rdb)
            except KeyError:
                return None

        study = self._retry(load, f"load study {name}")
        return None if study is None else Stage(name, study._study_id, study)


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
