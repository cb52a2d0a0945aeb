"""The coordination primitives under races: real processes, real SQLite and PostgreSQL.

Each test sets up the race the primitive exists for, and checks the one promise it makes:
a slot re-queued once however many workers recover it, a lease held by one worker at a
time, a holder that lost its lease unable to write on, a dropped connection retried.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from collections import Counter

import optuna
import pytest
import sqlalchemy as sa
from stored import let_lease_time_pass, let_time_pass

from hpsearch import store as st
from hpsearch.store import policy
from hpsearch.store.sql.claims import claim_slot, finish_trial, requeue_trial, stale_trials
from hpsearch.store.sql.leases import Lease, LeaseLost

GRACE = 1.0


def rdb(url: str) -> optuna.storages.RDBStorage:
    """Optuna's storage on ``url``, with the engine options hpsearch's store uses."""
    return optuna.storages.RDBStorage(url, engine_kwargs=st.engine_kwargs(url))


def sid(engine, study: optuna.Study) -> int:
    """The study's id, read from Optuna's ``studies`` table (Optuna keeps it private)."""
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT study_id FROM studies WHERE study_name = :n"),
            {"n": study.study_name},
        ).scalar_one()


def as_stage(url: str, study: optuna.Study) -> st.Stage:
    return st.Stage(study.study_name, sid(rdb(url).engine, study), study)


def records(url: str, study: optuna.Study) -> list:
    return st.SearchStore.open(url).records(as_stage(url, study), "s")


def slots_study(url: str, n: int, name: str = "race") -> optuna.Study:
    """A study of ``n`` enqueued slots, each with a fixed point and its slot number."""
    study = optuna.create_study(storage=rdb(url), study_name=name)
    for i in range(n):
        study.enqueue_trial({"x": float(i)}, user_attrs={"slot": i, "seed": 100 + i})
    return study


def _recover_at_once(url: str, barrier) -> None:
    store = st.SearchStore.open(url)
    study = optuna.load_study(storage=store.dashboard_storage(), study_name="race")
    barrier.wait()
    store.recover(as_stage(url, study), GRACE, max_retry=3)


@pytest.mark.slow
def test_workers_recovering_together_requeue_each_slot_once(storage_url):
    """Optuna's fail_stale_trials queued 26-33 copies of 20 slots here on SQLite."""
    study = slots_study(storage_url, 20)
    engine = rdb(storage_url).engine
    claimed = [claim_slot(engine, sid(engine, study)) for _ in range(20)]
    assert None not in claimed
    let_time_pass(engine, GRACE + 60)  # every claimer "died": no beat since the claim
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(8)
    procs = [ctx.Process(target=_recover_at_once, args=(storage_url, barrier)) for _ in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    trials = study.get_trials()
    waiting = Counter(t.user_attrs["slot"] for t in trials if t.state.name == "WAITING")
    assert waiting == Counter(range(20))
    assert Counter(t.state.name for t in trials) == {"FAIL": 20, "WAITING": 20}
    assert sorted(t.number for t in trials) == list(range(40))  # numbered as Optuna would


def test_a_requeued_copy_is_the_same_slot_and_supersedes_the_attempt(sqlite_url):
    study = slots_study(sqlite_url, 2)
    engine = rdb(sqlite_url).engine
    tid = claim_slot(engine, sid(engine, study)).trial_id
    trial = optuna.trial.Trial(study, tid)
    x = trial.suggest_float("x", 0.0, 10.0)
    trial.set_user_attr("worker", "host:1")

    copy_id = requeue_trial(engine, tid, reason="worker lost")
    assert copy_id is not None
    assert requeue_trial(engine, tid, reason="again") is None  # no longer RUNNING: no-op
    by_id = {t._trial_id: t for t in study.get_trials()}
    old, copy = by_id[tid], by_id[copy_id]
    assert old.state.name == "FAIL" and old.user_attrs["fail_reason"].startswith("worker lost")
    assert copy.state.name == "WAITING" and copy.number == 2
    assert copy.params == {"x": x} and copy.distributions == old.distributions
    assert copy.user_attrs == {"slot": old.user_attrs["slot"], "seed": old.user_attrs["seed"]}
    assert copy.system_attrs["retry_history"] == [old.number]
    assert copy.system_attrs["failed_trial"] == old.number
    assert copy.system_attrs["fixed_params"] == {"x": x}
    records_ = records(sqlite_url, study)
    assert [r.superseded for r in records_] == [True, False, False]

    # The copy runs through the ordinary path: claimed, suggested the same point, told.
    claim_slot(engine, sid(engine, study))  # slot 1, queued before the copy
    again = claim_slot(engine, sid(engine, study)).trial_id
    assert again == copy_id
    rerun = optuna.trial.Trial(study, again)
    assert rerun.suggest_float("x", 0.0, 10.0) == x
    study.tell(rerun, 1.0)


def test_a_slot_that_keeps_losing_its_worker_is_given_up(sqlite_url):
    study = slots_study(sqlite_url, 1)
    engine = rdb(sqlite_url).engine
    for _ in range(3):
        tid = claim_slot(engine, sid(engine, study)).trial_id
        assert requeue_trial(engine, tid, reason="lost", max_retry=2) is not None or _ == 2
    states = Counter(t.state.name for t in study.get_trials())
    assert states == {"FAIL": 3}
    last = study.get_trials()[-1]
    assert "given up" in last.user_attrs["fail_reason"]
    assert not records(sqlite_url, study)[-1].superseded  # it counts towards the budget


def test_a_claim_reads_its_slot_back_and_a_finish_is_fenced(storage_url):
    """One transaction claims and reads the slot; one records the result, only while the
    trial is still this worker's (RUNNING)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    study = optuna.create_study(storage=rdb(storage_url), study_name="claims")
    for slot, lr in enumerate((1e-3, 2e-2, 0.5)):
        study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.WAITING,
                params={"lr": lr, "act": "tanh"},
                distributions={
                    "lr": FloatDistribution(1e-5, 1.0, log=True),
                    "act": CategoricalDistribution(["relu", "tanh"]),
                },
                user_attrs={"slot": slot, "epochs": 3},
            )
        )
    engine = rdb(storage_url).engine
    first = claim_slot(engine, sid(engine, study), worker="host:1")
    assert first.number == 0 and list(first.params.items()) == [("lr", 1e-3), ("act", "tanh")]
    assert first.user_attrs == {"slot": 0, "epochs": 3, "worker": "host:1"}
    second, third = claim_slot(engine, sid(engine, study)), claim_slot(engine, sid(engine, study))
    assert claim_slot(engine, sid(engine, study)) is None

    assert finish_trial(engine, first.trial_id, 0.25, {"wall_seconds": 1.5, "curve": [1, 2]})
    assert not finish_trial(engine, first.trial_id, 9.0, {"wall_seconds": 0.0})
    assert finish_trial(engine, second.trial_id, None, {"fail_reason": "boom"})
    requeue_trial(engine, third.trial_id, reason="worker lost")
    assert not finish_trial(engine, third.trial_id, 0.1, {})  # re-queued while away: dropped

    fresh = optuna.load_study(storage=rdb(storage_url), study_name="claims")
    done, failed, lost, copy = fresh.get_trials()
    assert (
        done.state.name == "COMPLETE" and done.value == 0.25 and done.duration.total_seconds() >= 0
    )
    assert done.user_attrs == {"slot": 0, "epochs": 3, "worker": "host:1", "wall_seconds": 1.5,
                               "curve": [1, 2]}  # fmt: skip
    assert failed.state.name == "FAIL" and failed.user_attrs["fail_reason"] == "boom"
    assert lost.state.name == "FAIL" and lost.value is None
    assert copy.state.name == "WAITING" and copy.params == {"lr": 0.5, "act": "tanh"}


def test_stale_trials_are_silent_ones_and_those_without_a_heartbeat_row(storage_url):
    study = slots_study(storage_url, 3)
    engine = rdb(storage_url).engine
    silent, orphan, alive = (claim_slot(engine, sid(engine, study)).trial_id for _ in "abc")
    with engine.begin() as conn:  # as if killed before its first beat, with no row at all
        conn.exec_driver_sql(f"DELETE FROM trial_heartbeats WHERE trial_id = {orphan}")
    assert stale_trials(engine, sid(engine, study), GRACE) == []
    let_time_pass(engine, GRACE + 60)  # whole minutes: SQLite's CURRENT_TIMESTAMP has seconds
    study._storage.record_heartbeat(alive)
    assert sorted(stale_trials(engine, sid(engine, study), GRACE)) == sorted([silent, orphan])


def lease(url: str, owner: str, duration_s: float = 30) -> Lease:
    return Lease(rdb(url).engine, "toy/coarse", duration_s=duration_s, owner=owner)


def test_a_lease_is_held_by_one_worker_until_it_expires(storage_url):
    a, b = lease(storage_url, "a"), lease(storage_url, "b")
    assert a.acquire() and a.token == 1
    assert not b.acquire()
    let_lease_time_pass(a.engine, a.name, 18)
    a.check()  # renewed: still not expired after the original duration
    let_lease_time_pass(a.engine, a.name, 18)
    assert not b.acquire()
    let_lease_time_pass(a.engine, a.name, 42)  # a froze past its lease
    assert b.acquire() and b.token == 2
    with pytest.raises(LeaseLost):
        a.check()  # fencing: a wakes up and must not write on


def test_released_leases_never_hand_out_an_old_token_again(storage_url):
    a, b, c = lease(storage_url, "a"), lease(storage_url, "b"), lease(storage_url, "c")
    assert a.acquire()
    let_lease_time_pass(a.engine, a.name, 60)
    assert b.acquire()
    b.release()
    assert c.acquire() and c.token == 3
    with pytest.raises(LeaseLost):
        a.check()  # token 1 was a's; had the row been deleted, c would hold token 1 now


def _take(url: str, barrier, results) -> None:
    mine = lease(url, str(os.getpid()), duration_s=30)
    barrier.wait()
    results.put(mine.acquire())


@pytest.mark.slow
def test_processes_racing_for_a_lease_get_one_winner(storage_url):
    lease(storage_url, "setup").engine.dispose()  # the table exists before the race
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(6), ctx.Queue()
    procs = [ctx.Process(target=_take, args=(storage_url, barrier, results)) for _ in range(6)]
    for p in procs:
        p.start()
    wins = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert sorted(wins) == [False] * 5 + [True]


@pytest.mark.postgres
@pytest.mark.slow  # a session killed every 20 ms: on a loaded machine no statement gets through
def test_a_connection_dropped_inside_optuna_is_retried(postgres_url):
    """Optuna wraps a dropped connection in StorageInternalError; with_retries must see
    through it, or a database blip fails a healthy trial."""
    import sqlalchemy as sa

    storage = rdb(postgres_url)
    study = optuna.create_study(storage=storage, study_name="drop")
    trial_id = study.ask()._trial_id
    admin = sa.create_engine(
        os.environ["HPSEARCH_TEST_POSTGRES_URL"], isolation_level="AUTOCOMMIT"
    )
    db = postgres_url.rsplit("/", 1)[1]
    done = threading.Event()
    killed = 0

    def killer() -> None:
        nonlocal killed
        while not done.is_set():
            with admin.connect() as conn:
                killed += conn.exec_driver_sql(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    f"WHERE datname = '{db}' AND pid <> pg_backend_pid()"
                ).scalar()
            time.sleep(0.02)

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        for i in range(150):
            policy.with_retries(
                lambda i=i: storage.set_trial_user_attr(trial_id, "i", i),
                what="set attr",
                deadline_s=120,
                on_permanent=lambda exc, kind: exc,
                first_wait=0.01,
            )
    finally:
        done.set()
        thread.join()
        admin.dispose()
    assert killed > 0
    assert storage.get_trial(trial_id).user_attrs["i"] == 149
