"""Parallel workers over one database: real processes, real SQLite and PostgreSQL, faults.

Every test checks the same two promises at the end: each stage finished exactly its
``trials`` slots (no overshoot, none lost), and nothing is left RUNNING.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa
from cli_runner import child_pythonpath
from stored import TrialCounter
from stubs import toy_study

from hpsearch import store as st
from hpsearch.engine.local_workers import MAX_RESTARTS
from hpsearch.engine.stages import prepare_stage, register_search
from hpsearch.engine.worker import WorkerConfig, run_worker
from hpsearch.objectives.catalog import load_spec
from hpsearch.report.search import load_search
from hpsearch.store.sql.claims import claim_slot

TESTS = Path(__file__).parent
GRACE = 3  # seconds: a dead worker's trial is re-queued within this


def env_for(url: str, sleep: float = 0.05) -> dict[str, str]:
    """The environment of a worker process: an existing ``$PYTHONPATH`` is kept after the
    tests folder, so that a checkout put first on it is the code the workers run."""
    env = {k: v for k, v in os.environ.items() if k != "HPSEARCH_STORAGE"}
    env.update(PYTHONPATH=child_pythonpath(), HPSEARCH_STORAGE=url, STUB_SLEEP=str(sleep))
    return env


def start_worker(
    url: str, name: str = "toy", sleep: float = 0.05, grace: int = GRACE
) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hpsearch.cli", "-v", "worker", name, "--threads", "1",
         "--grace-period", str(grace), "--no-progress"],
        env=env_for(url, sleep),
        cwd=TESTS,  # not the checkout: `python -m` puts the folder it runs in first on the path
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip


def register(url: str, path: Path) -> None:
    register_search(st.SearchStore.open(url), load_spec(path))


def finish(procs: list[subprocess.Popen], timeout: float = 120) -> list[str]:
    """Wait for the workers; return their output. Fails the test on a crash or a hang."""
    outs = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
            pytest.fail(f"worker {p.pid} hung:\n{out[-3000:]}")
        outs.append(out)
    return outs


def assert_exact(url: str, name: str = "toy") -> dict[str, list]:
    """Every stage ran exactly its slots, once each; returns the points per stage."""
    view = load_search(st.SearchStore.open(url), name)
    points = {}
    for v in view.stages:
        done = v.finished
        assert len(done) == v.stage.trials, (v.stage.name, Counter(r.state for r in v.records))
        assert sorted(r.slot for r in done) == list(range(v.stage.trials))
        assert not [r for r in v.records if r.state in ("RUNNING", "WAITING")]
        points[v.stage.name] = sorted(
            tuple(round(x, 12) if isinstance(x, float) else x for x in r.params.values())
            for r in done
        )
    return points


def trials_of(url: str, study: str) -> list[optuna.trial.FrozenTrial]:
    # skip_table_creation: a test watching a launch must not race it to create the schema
    # (two processes creating Optuna's tables at once collide on PostgreSQL's catalog)
    storage = optuna.storages.RDBStorage(url, skip_table_creation=True)
    try:
        return optuna.load_study(study_name=study, storage=storage).get_trials()
    finally:
        storage.engine.dispose()


def wait_for(predicate, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def running_trial_of(url: str, pid: int, study: str = "toy/coarse"):
    try:
        return [
            t for t in trials_of(url, study)
            if t.state.name == "RUNNING" and t.user_attrs.get("worker", "").endswith(f":{pid}")
        ]  # fmt: skip
    except KeyError:
        return []


@pytest.mark.slow
def test_four_workers_run_exact_budgets_and_the_same_points_as_one(
    storage_url, stub_study, tmp_path
):
    path = stub_study(toy_study(objective="sleepy", coarse=16, fine=6))
    register(storage_url, path)
    outs = finish([start_worker(storage_url) for _ in range(4)])
    assert all("Traceback" not in o for o in outs), outs
    four = assert_exact(storage_url)

    one_url = f"sqlite:///{tmp_path / 'one.db'}"
    register(one_url, path)
    run_worker(WorkerConfig(one_url, "toy"))
    assert assert_exact(one_url) == four
    # each worker did part of the work: the load really was shared
    workers = {t.user_attrs["worker"] for t in trials_of(storage_url, "toy/coarse")}
    assert len(workers) >= 2


def tpe_fine(**kw) -> str:
    """The toy study with a model-based fine stage (``engine.fine.FineSampler``)."""
    return toy_study(**kw).replace('name = "fine"\n', 'name = "fine"\nsampler = "tpe"\n')


def test_four_workers_proposing_at_once_or_in_turn_get_four_points(stub_study, tmp_path):
    """Four workers' samplers (seeded alike) filling four of the fine stage's slots, at the
    stage's start and after 4 of its runs. In turn: each sees the points before it. At
    once: each proposes on a copy of the database taken when all four slots were claimed,
    so none sees another's point (as workers whose proposals overlap). Before each slot
    had its own random stream, the four at once got one point."""
    path = stub_study(tpe_fine(coarse=12, fine=12))
    spec = load_spec(path)
    for done in (12, 16):
        base = tmp_path / f"base{done}.db"
        register_search(st.SearchStore.open(f"sqlite:///{base}"), spec)
        run_worker(WorkerConfig(f"sqlite:///{base}", "toy", max_trials=done))
        prepare_stage(st.SearchStore.open(f"sqlite:///{base}"), spec, 1, owner="test")
        turns = _copy(base, tmp_path / f"turns{done}.db")
        in_turn = [_propose(turns, spec) for _ in range(4)]  # a sampler each, one database
        claimed = [_claim(base, spec) for _ in range(4)]
        at_once = [
            _propose(_copy(base, tmp_path / f"once{done}-{i}.db"), spec, claim)
            for i, claim in enumerate(claimed)
        ]
        assert len(set(in_turn)) == 4, in_turn
        assert len(set(at_once)) == 4, at_once


def test_four_worker_processes_run_distinct_points_in_a_model_based_stage(storage_url, stub_study):
    """Four processes start a first stage of TPE together, and reach the TPE fine stage
    together (the barrier releases them at once): exact budgets, and no two runs of a
    stage share a point (TPE's random start-up points included)."""
    study = tpe_fine(objective="sleepy", coarse=8, fine=8, sampler="tpe")
    register(storage_url, stub_study(study))
    outs = finish([start_worker(storage_url) for _ in range(4)])
    assert all("Traceback" not in o for o in outs), outs
    for stage, points in assert_exact(storage_url).items():
        assert len(set(points)) == len(points) == 8, (stage, points)


def _copy(db: Path, to: Path) -> Path:
    """A copy of SQLite database ``db`` as it is now (its write-ahead log included)."""
    import sqlite3

    src, dst = sqlite3.connect(db), sqlite3.connect(to)
    src.backup(dst)
    src.close()
    dst.close()
    return to


def _claim(db: Path, spec):
    from hpsearch.engine.stages import open_stage

    store = st.SearchStore.open(f"sqlite:///{db}")
    return claim_slot(store._rdb.engine, open_stage(store, spec, 1).study_id)


def _propose(db: Path, spec, claim=None) -> tuple:
    """The point a fresh worker's sampler gives the fine stage's slot ``claim`` (None: it
    claims one) in database ``db``."""
    from hpsearch.core.space import SearchSpace
    from hpsearch.engine.stages import open_stage

    claim = claim or _claim(db, spec)
    store = st.SearchStore.open(f"sqlite:///{db}")
    stage = open_stage(store, spec, 1)
    space = SearchSpace.from_dict(store.stage_attrs(stage)[st.ATTR_SPACE])
    return tuple(st.Slot(store, stage, claim, space).params.values())


def test_claims_never_hand_a_slot_out_twice(storage_url, stub_study):
    path = stub_study(toy_study(coarse=60, fine=1))
    spec = load_spec(path)
    storage = st.SearchStore.open(storage_url)
    register_search(storage, spec)
    stage = prepare_stage(storage, spec, 0, owner="test")
    claimed: list[int] = []
    lock = threading.Lock()

    def claimer():
        # its own connections, as a process has
        engine = optuna.storages.RDBStorage(storage_url).engine
        while (claim := claim_slot(engine, stage.study_id)) is not None:
            with lock:
                claimed.append(claim.trial_id)

    threads = [threading.Thread(target=claimer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claimed) == 60 and len(set(claimed)) == 60
    assert len(stage.study.get_trials()) == 60  # and no trial was created on the way


@pytest.mark.slow
def test_a_worker_killed_mid_trial_has_its_slot_rerun(storage_url, stub_study):
    register(storage_url, stub_study(toy_study(objective="sleepy", coarse=6, fine=2)))
    victim, survivor = start_worker(storage_url, sleep=1.0), start_worker(storage_url, sleep=1.0)
    lost = wait_for(lambda: running_trial_of(storage_url, victim.pid), what="victim's trial")[0]
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    finish([survivor])
    assert_exact(storage_url)
    trials = trials_of(storage_url, "toy/coarse")
    assert trials[lost.number].state.name == "FAIL"
    reruns = [t for t in trials if lost.number in t.system_attrs.get("retry_history", [])]
    assert len(reruns) == 1 and reruns[0].state.name == "COMPLETE"
    assert (
        reruns[0].params == lost.params and reruns[0].user_attrs["slot"] == lost.user_attrs["slot"]
    )


@pytest.mark.slow
def test_a_killed_stage_preparer_is_taken_over(storage_url, stub_study):
    register(storage_url, stub_study(toy_study(coarse=300, fine=2)))
    count = TrialCounter(storage_url, "toy/coarse")
    preparer = start_worker(storage_url)
    count.wait_for_some()
    preparer.send_signal(signal.SIGKILL)
    preparer.wait()
    partial = count()
    count.close()
    assert partial < 300, "preparation finished before the kill; the test proves nothing"
    out = finish([start_worker(storage_url)], timeout=180)[0]
    assert "took over expired lease" in out
    assert_exact(storage_url)
    assert len(trials_of(storage_url, "toy/coarse")) == 300  # no slot enqueued twice


def _exists(url: str) -> bool:
    """Whether the launch has created the first stage's study yet: asked in plain SQL, so
    that a database whose schema is still being created reads as "not yet"."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            query = sa.text("SELECT 1 FROM studies WHERE study_name = 'toy/coarse'")
            return conn.execute(query).first() is not None
    except sa.exc.DBAPIError:  # no tables yet
        return False
    finally:
        engine.dispose()


@pytest.mark.slow
def test_a_worker_paused_past_the_grace_period_drops_its_result(storage_url, stub_study):
    register(storage_url, stub_study(toy_study(objective="sleepy", coarse=6, fine=2)))
    sleeper, other = start_worker(storage_url, sleep=1.0), start_worker(storage_url, sleep=1.0)
    paused = wait_for(lambda: running_trial_of(storage_url, sleeper.pid), what="a trial")[0]
    sleeper.send_signal(signal.SIGSTOP)
    wait_for(
        lambda: trials_of(storage_url, "toy/coarse")[paused.number].state.name == "FAIL",
        timeout=30,
        what="the paused trial to be failed as stale",
    )
    sleeper.send_signal(signal.SIGCONT)
    outs = finish([sleeper, other])
    assert sleeper.returncode == 0, outs[0][-3000:]
    assert "Traceback" not in outs[0]
    assert "dropped" in outs[0] or "finished elsewhere" in outs[0]
    assert_exact(storage_url)


@pytest.mark.slow
@pytest.mark.postgres
def test_workers_survive_dropped_database_connections(postgres_url, stub_study):
    import sqlalchemy as sa

    register(postgres_url, stub_study(toy_study(objective="sleepy", coarse=10, fine=4)))
    procs = [start_worker(postgres_url, sleep=0.4) for _ in range(2)]
    admin = sa.create_engine(
        os.environ["HPSEARCH_TEST_POSTGRES_URL"], isolation_level="AUTOCOMMIT"
    )
    db = postgres_url.rsplit("/", 1)[1]
    killed = 0
    for _ in range(5):
        time.sleep(1.0)
        with admin.connect() as conn:
            killed += conn.exec_driver_sql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                f"WHERE datname = '{db}' AND pid <> pg_backend_pid()"
            ).scalar()
    admin.dispose()
    assert killed > 0
    outs = finish(procs)
    assert all(p.returncode == 0 for p in procs), [o[-2000:] for o in outs]
    assert_exact(postgres_url)


@pytest.mark.slow
def test_resume_after_every_worker_was_killed(storage_url, stub_study):
    register(storage_url, stub_study(toy_study(objective="sleepy", coarse=8, fine=2)))
    procs = [start_worker(storage_url, sleep=0.5) for _ in range(2)]
    for p in procs:
        wait_for(lambda p=p: running_trial_of(storage_url, p.pid), what="both workers busy")
    for p in procs:
        p.send_signal(signal.SIGKILL)
        p.wait()
    out = finish([start_worker(storage_url, sleep=0.05)])[0]
    assert "Traceback" not in out
    assert_exact(storage_url)


def launch(url: str, path: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hpsearch.cli", "launch", str(path), "--grace-period", str(GRACE),
         *extra],
        env=env_for(url, 0.3),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal would give it
    )  # fmt: skip


@pytest.mark.slow
def test_two_launches_of_the_same_file_at_once_share_the_work(storage_url, stub_study):
    path = stub_study(toy_study(objective="sleepy", coarse=8, fine=3))
    a, b = launch(storage_url, path), launch(storage_url, path)
    outs = finish([a, b])
    assert a.returncode == 0 and b.returncode == 0, [o[-2000:] for o in outs]
    assert_exact(storage_url)


@pytest.mark.slow
def test_ctrl_c_on_launch_requeues_and_a_relaunch_resumes(sqlite_url, stub_study):
    path = stub_study(toy_study(objective="sleepy", coarse=10, fine=2))
    proc = launch(sqlite_url, path, "--workers", "2")
    wait_for(lambda: _exists(sqlite_url) and any(
        t.state.name == "COMPLETE" for t in trials_of(sqlite_url, "toy/coarse")
    ), what="first trials")  # fmt: skip
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
    out = finish([proc])[0]
    assert proc.returncode == 130, out[-3000:]
    assert not [t for t in trials_of(sqlite_url, "toy/coarse") if t.state.name == "RUNNING"]
    again = launch(sqlite_url, path, "--workers", "2")
    out = finish([again])[0]
    assert again.returncode == 0 and "resuming" in out, out[-3000:]
    assert_exact(sqlite_url)


def test_sqlite_refuses_more_local_workers_than_it_can_serve(sqlite_url, stub_study):
    proc = launch(sqlite_url, stub_study(toy_study()), "--workers", "8")
    out = finish([proc])[0]
    assert proc.returncode == 2 and "use PostgreSQL" in out


def running_worker_pid(url: str) -> int | None:
    """The pid of a worker running a trial of the first stage, if one is."""
    if not _exists(url):
        return None
    running = [t for t in trials_of(url, "toy/coarse") if t.state.name == "RUNNING"]
    return int(running[0].user_attrs["worker"].rsplit(":", 1)[1]) if running else None


@pytest.mark.slow_on("sqlite")
def test_launch_replaces_a_killed_worker_and_exits_0_with_the_summary(storage_url, stub_study):
    proc = launch(storage_url, stub_study(toy_study(objective="sleepy", coarse=12, fine=3)),
                  "--workers", "2")  # fmt: skip
    victim = wait_for(lambda: running_worker_pid(storage_url), what="a worker busy")
    os.kill(victim, signal.SIGKILL)
    out = finish([proc])[0]
    assert proc.returncode == 0, out[-3000:]
    assert f"warning: worker {victim} killed by SIGKILL; started worker" in out, out[-3000:]
    assert f"(restart 1 of {MAX_RESTARTS})" in out
    assert (
        f"warning: worker(s) {victim} (killed by SIGKILL) died; the search completed without them"
        in out
    )
    assert "stage coarse: 12/12 trials x 1 epoch(s)" in out  # the summary
    assert_exact(storage_url)


def test_launch_exits_1_when_workers_keep_dying_and_the_search_cannot_complete(
    sqlite_url, stub_study
):
    proc = launch(sqlite_url, stub_study(toy_study(objective="killed", coarse=4, fine=2)),
                  "--workers", "2")  # fmt: skip
    out = finish([proc])[0]
    assert proc.returncode == 1, out[-3000:]
    assert out.count("killed by SIGKILL; started worker") == MAX_RESTARTS, out[-3000:]
    assert out.count(f"killed by SIGKILL; not restarted ({MAX_RESTARTS} restarts used)") == 2
    assert "the search did not complete: worker(s) " in out and "launch it again" in out
    assert "Traceback" not in out


def test_progress_of_a_search_ignores_searches_its_name_matches_as_a_pattern(
    storage_url, stub_study
):
    for name in ("a_b", "axb"):  # LIKE 'a_b/%' matches axb's studies too
        register(storage_url, stub_study(toy_study(name=name, coarse=4, fine=2), f"{name}.toml"))
    run_worker(WorkerConfig(storage_url, "axb"))
    store = st.SearchStore.open(storage_url)
    assert {k: c.done for k, c in store.stage_counts("axb").items()} == {"coarse": 4, "fine": 2}
    assert all(c.done == 0 for c in store.stage_counts("a_b").values())


def test_a_worker_that_exits_on_bad_input_is_not_restarted(capsys):
    """Exit code 2 is a permanent error (the search was deleted, say): a new worker would
    meet it again, so the launch spends no restart on it (the store is never asked)."""
    from hpsearch.engine.local_workers import Pool, _replace

    def start(_: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-c", "raise SystemExit(2)"])

    pool = Pool(start)
    dead = pool.start(0)
    dead.wait(timeout=30)
    assert pool.newly_dead() == [dead]
    _replace(None, "toy", None, pool, dead)  # type: ignore[arg-type]
    assert pool.restarts == 0 and pool.procs == [dead]
    assert f"worker {dead.pid} exited with code 2 (bad input); not restarted" in (
        capsys.readouterr().err
    )
