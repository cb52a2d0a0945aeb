"""What tests read back from a search's database, the way optuna-dashboard reads it:
through Optuna's API on the storage URL, not through hpsearch's store."""

from __future__ import annotations

import datetime
import time

import optuna
import sqlalchemy as sa


def stage_study(url: str, search: str, stage: str) -> optuna.Study:
    """The Optuna study of one stage (``NAME/STAGE``), as the dashboard loads it."""
    return optuna.load_study(study_name=f"{search}/{stage}", storage=url)


def study_system_attrs(url: str, name: str) -> dict:
    """A study's system attrs (where optuna-dashboard keeps notes and figures). Its id is
    read from Optuna's ``studies`` table, as Optuna keeps it private on the study."""
    storage = optuna.storages.RDBStorage(url)
    with storage.engine.connect() as conn:
        study_id = conn.execute(
            sa.text("SELECT study_id FROM studies WHERE study_name = :n"), {"n": name}
        ).scalar_one()
    return storage.get_study_system_attrs(study_id)


def let_time_pass(url_or_engine: str | sa.Engine, seconds: float) -> None:
    """As if ``seconds`` had passed since every claim and heartbeat, without waiting: move
    back every trial's start (the claimer's clock) and heartbeat (the database's clock).
    Liveness is judged from these rows, so a test ages them instead of sleeping."""
    from optuna.storages._rdb import models

    owned = isinstance(url_or_engine, str)
    engine = sa.create_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    shift = datetime.timedelta(seconds=seconds)
    beats, trials = models.TrialHeartbeatModel.__table__, models.TrialModel.__table__
    with engine.begin() as conn:
        for table, column in ((beats, beats.c.heartbeat), (trials, trials.c.datetime_start)):
            key = table.c.trial_id
            for trial_id, at in conn.execute(sa.select(key, column).where(column.is_not(None))):
                conn.execute(table.update().where(key == trial_id).values({column: at - shift}))
    if owned:
        engine.dispose()


def let_lease_time_pass(engine: sa.Engine, name: str, seconds: float) -> None:
    """As if ``seconds`` had passed for the lease ``name`` without its holder renewing it:
    its expiry (the holders' wall clock) moves back."""
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE hpsearch_leases SET expires_at = expires_at - :s WHERE name = :n"),
            {"s": seconds, "n": name},
        )


class TrialCounter:
    """Counts one study's trials, cheaply enough to poll every millisecond: tests that stop
    a stage preparer part-way need it, since a 100-slot batch commits within tens of
    milliseconds. One SQL count on Optuna's tables, because Optuna's ``get_n_trials``
    reads every trial (80 ms at 800 trials: the whole preparation had ended by then)."""

    def __init__(self, url: str, study: str) -> None:
        import sqlalchemy as sa

        self.storage = optuna.storages.RDBStorage(url)
        self.study = study
        self._count = sa.text(
            "SELECT COUNT(*) FROM trials t JOIN studies s ON s.study_id = t.study_id "
            "WHERE s.study_name = :name"
        )

    def __call__(self) -> int:
        with self.storage.engine.connect() as conn:
            return conn.execute(self._count, {"name": self.study}).scalar_one()

    def wait_for_some(self, timeout: float = 60) -> int:
        """Return as soon as the study has a trial (its first batch was committed)."""
        deadline = time.monotonic() + timeout
        while (n := self()) == 0 and time.monotonic() < deadline:
            time.sleep(0.001)
        return n

    def ready(self) -> bool:
        """The stage's ``ready`` attr: its preparation was finished."""
        import sqlalchemy as sa

        query = sa.text(
            "SELECT a.value_json FROM study_user_attributes a JOIN studies s "
            "ON s.study_id = a.study_id WHERE s.study_name = :name AND a.key = 'ready'"
        )
        with self.storage.engine.connect() as conn:
            return conn.execute(query, {"name": self.study}).scalar() == "true"

    def close(self) -> None:
        self.storage.engine.dispose()
