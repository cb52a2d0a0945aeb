"""Optuna storage: URL rules, engine options, stage study naming, and attrs.

The database is the only source of truth: a search's spec, each stage's space and the
region that produced it live in stage studies' user attrs, so any worker on any machine
(and optuna-dashboard) sees the whole search from the storage URL alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from hpsearch.records import TrialRecord
from hpsearch.space import CategoricalParam, FloatParam, Param
from hpsearch.spec import StudySpec
from hpsearch.urls import DEFAULT_STORAGE, ENV_STORAGE, is_sqlite, mask_url, resolve_url  # noqa: F401

if TYPE_CHECKING:
    import optuna
    from optuna.storages import RDBStorage
    from optuna.trial import FrozenTrial

log = logging.getLogger(__name__)
T = TypeVar("T")

# Study user attrs (the dashboard shows them; keep the names plain).
ATTR_SPEC = "spec"  # on the first stage study only: the whole search
ATTR_STAGE = "stage"
ATTR_STAGE_INDEX = "stage_index"
ATTR_EPOCHS = "epochs"
ATTR_SAMPLER = "sampler"
ATTR_SEED = "seed"
ATTR_SPACE = "space"
ATTR_REGION = "region"
ATTR_POINTS = "n_points"
ATTR_READY = "ready"
ATTR_BASELINE = "baseline"  # on a compare baseline's study: "grid" or "random"


def stage_study_name(search: str, stage: str) -> str:
    return f"{search}/{stage}"


def engine_kwargs(url: str) -> dict[str, Any]:
    """Engine options that Optuna leaves off: ``pool_pre_ping`` everywhere (Optuna turns it
    on only for MySQL, so a dropped PostgreSQL connection killed workers), and a real busy
    timeout for SQLite so that a handful of local workers wait instead of failing with
    "database is locked"."""
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if is_sqlite(url):
        kwargs["connect_args"] = {"timeout": 60}
    return kwargs


def open_storage(
    url: str,
    *,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    wait_s: float = 120.0,
) -> RDBStorage:
    """An RDBStorage for ``url``; with a heartbeat, stale trials are re-queued (same params).

    A trial whose worker died is re-queued at most 3 times: a trial that kills its worker
    every time (out of memory, say) must not take the whole search down with it. A worker
    waits up to ``wait_s`` for a database that is restarting; one-shot commands such as
    ``status`` give up sooner.
    """
    import warnings

    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
    from sqlalchemy import exc as sa_exc

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Heartbeats and the retry callback are "experimental" since Optuna 2.x; they are the
    # documented way to recover trials of dead workers, and hpsearch pins Optuna 5.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    callback = RetryHeartbeatStaleTrialCallback(max_retry=3) if heartbeat_interval else None

    def create() -> RDBStorage:
        return RDBStorage(
            url,
            engine_kwargs=engine_kwargs(url),
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=callback,
        )

    for attempt in range(20):
        try:
            storage = with_retries(create, what=f"open storage {mask_url(url)}", deadline_s=wait_s)
            break
        except (sa_exc.IntegrityError, sa_exc.ProgrammingError):
            # Processes opening a fresh database together race to create Optuna's schema
            # (PostgreSQL: duplicate enum types; SQLite: the version stamp). The loser
            # retries once the winner is done, and then finds the schema there.
            if attempt == 19:
                raise
            time.sleep(0.25)
    if is_sqlite(url) and ":memory:" not in url and Path(url.split(":///", 1)[-1]).exists():
        # WAL lets readers (status, report, the dashboard) run while workers write. It is
        # safe on a local disk, which is where an embedded SQLite database belongs.
        with storage.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    return storage


def is_transient(exc: BaseException) -> bool:
    """A database error that a retry can cure: a dropped connection, a restart, a lock."""
    from optuna.exceptions import StorageInternalError
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, StorageInternalError) and exc.__cause__ is not None:
        # Optuna wraps every SQLAlchemy error raised in its sessions, a dropped connection
        # included ("An exception is raised during the commit"): judge the real one.
        return is_transient(exc.__cause__)
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        return True
    text = str(exc).lower()
    return any(
        s in text
        for s in ("database is locked", "server closed the connection", "connection refused")
    )


def with_retries(
    fn: Callable[[], T], *, what: str, deadline_s: float = 120.0, first_wait: float = 0.2
) -> T:
    """Run ``fn``, retrying transient database errors with backoff for ``deadline_s``.

    Workers must outlive a database restart of half a minute; an error that is not
    transient, or one that lasts past the deadline, is raised.
    """
    wait, start = first_wait, time.monotonic()
    while True:
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc) or time.monotonic() - start > deadline_s:
                raise
            log.warning("%s failed (%s); retrying in %.1f s", what, type(exc).__name__, wait)
            time.sleep(wait)
            wait = min(wait * 2, 5.0)


def load_stage_study(storage: RDBStorage, search: str, stage: str) -> optuna.Study | None:
    """The stage study, or None if that stage has not been created yet."""
    import optuna

    try:
        return optuna.load_study(study_name=stage_study_name(search, stage), storage=storage)
    except KeyError:
        return None


def find_spec(storage: RDBStorage, search: str) -> StudySpec | None:
    """The spec stored for ``search`` (on its first stage study), or None if unknown.

    A compare baseline (``hpsearch compare``) is a one-stage search stored beside the
    search it compares with, as ``NAME/grid-baseline``, with a ``baseline`` attr; it is
    addressed by that full study name and never found under ``NAME`` alone.
    """
    for study in storage.get_all_studies():
        attrs = study.user_attrs
        if ATTR_SPEC not in attrs:
            continue
        if "/" in search:
            found = study.study_name == search and ATTR_BASELINE in attrs
        else:
            found = study.study_name.startswith(search + "/") and ATTR_BASELINE not in attrs
        if found:
            data = attrs[ATTR_SPEC]
            return StudySpec.from_dict(data["spec"], base_dir=data.get("base_dir", "."))
    return None


def search_names(storage: RDBStorage) -> list[str]:
    """Names of all searches in the storage (compare baselines are not searches)."""
    return sorted(
        s.study_name.split("/", 1)[0]
        for s in storage.get_all_studies()
        if "/" in s.study_name and ATTR_SPEC in s.user_attrs and ATTR_BASELINE not in s.user_attrs
    )


def to_record(t: FrozenTrial, stage: str, superseded: bool = False) -> TrialRecord:
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
        superseded=superseded,
        slot=t.user_attrs.get("slot"),
        epochs=int(t.user_attrs.get("epochs", 0)),
        duration_s=duration,
    )


def study_records(study: optuna.Study, stage: str) -> list[TrialRecord]:
    """All trials of a stage study as records, re-queued ones marked ``superseded``."""
    trials = with_retries(lambda: study.get_trials(deepcopy=False), what="read trials")
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    return [to_record(t, stage, superseded=t.number in retried) for t in trials]


def to_distribution(p: Param) -> optuna.distributions.BaseDistribution:
    """The Optuna distribution of a parameter: what the dashboard and importance read."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(p, CategoricalParam):
        return CategoricalDistribution(list(p.choices))
    if isinstance(p, FloatParam):
        return FloatDistribution(p.low, p.high, log=p.log)
    return IntDistribution(p.low, p.high, log=p.log, step=p.step)
