"""The faults and bad inputs of issue 10, with real processes, signals and databases.

A frozen stage preparer, connections dropped during preparation and at the stage barrier,
damaged and read-only SQLite files, storage URLs that can never work, two launches racing
to register one name, and workers finishing a stage together. Each test failed on the code
before the storage boundary (``hpsearch.store``) and checks the same promise at the end:
nothing lost, nothing run twice, and one clean line instead of a traceback.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from cli_runner import hpsearch
from optuna_dashboard import get_note
from stored import TrialCounter, stage_study
from stubs import toy_study
from test_workers import assert_exact, finish, register, start_worker

from hpsearch import store as st
from hpsearch.engine.stages import SpecMismatch, register_search
from hpsearch.objectives.catalog import parse_spec

# The fault benchmark's session killer, one copy for the benchmark and these tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from faults import Killer  # noqa: E402

PG_ENV = "HPSEARCH_TEST_POSTGRES_URL"
#: The shortest lease a worker takes: max(10, --grace-period) seconds.
LEASE_S = 10


def slot_counts(url: str, stage: str = "coarse") -> Counter:
    """How many trials each slot number of a stage has, re-queued copies included."""
    return Counter(t.user_attrs["slot"] for t in stage_study(url, "toy", stage).get_trials())


# -- 1. a frozen preparer ----------------------------------------------------------------


@pytest.mark.slow  # a lease must expire, and on PostgreSQL the frozen session time out
def test_a_frozen_preparer_adds_no_slot_when_it_wakes(storage_url, stub_study):
    register(storage_url, stub_study(toy_study(coarse=800, fine=2)))
    count = TrialCounter(storage_url, "toy/coarse")
    frozen = start_worker(storage_url, sleep=0)
    count.wait_for_some()
    frozen.send_signal(signal.SIGSTOP)
    at_freeze = count()
    try:
        assert 0 < at_freeze < 800, f"froze at {at_freeze} slots; the test proves nothing"
        other = start_worker(storage_url, sleep=0)
        # On PostgreSQL the other worker must finish the preparation while the preparer is
        # still frozen: its session times out and its locks go (without the timeouts the
        # take-over waited for the whole freeze). SQLite has one write lock and no server
        # to take it back: a preparer frozen inside a transaction keeps it until woken.
        sqlite = storage_url.startswith("sqlite")
        start = time.monotonic()
        while not count.ready() and time.monotonic() - start < (LEASE_S + 6 if sqlite else 75):
            time.sleep(0.2)
        took_over = count.ready()
        assert took_over or sqlite, "the frozen preparer blocked the other worker"
    finally:
        frozen.send_signal(signal.SIGCONT)
    outs = finish([frozen, other], timeout=180)
    count.close()
    assert frozen.returncode == 0 and other.returncode == 0, [o[-3000:] for o in outs]
    assert all("Traceback" not in o for o in outs), [o[-3000:] for o in outs]
    if took_over:
        assert "took over expired lease" in outs[1]
    counts = slot_counts(storage_url)
    assert sorted(counts) == list(range(800)) and set(counts.values()) == {1}, (
        f"{sum(counts.values())} trials, slots twice: {[s for s, n in counts.items() if n > 1]}"
    )
    assert_exact(storage_url)


@pytest.mark.postgres
def test_postgresql_sessions_time_out_so_a_frozen_process_cannot_hold_locks(postgres_url):
    engine = st.SearchStore.open(postgres_url).dashboard_storage().engine
    with engine.connect() as conn:
        idle = conn.exec_driver_sql("SHOW idle_in_transaction_session_timeout").scalar()
        lock = conn.exec_driver_sql("SHOW lock_timeout").scalar()
    assert idle == f"{st.IDLE_IN_TRANSACTION_MS // 1000}s"
    assert lock == f"{st.LOCK_TIMEOUT_MS // 1000}s"


# -- 2. dropped connections during preparation and at the stage barrier -------------------


@pytest.mark.postgres
@pytest.mark.slow  # four workers, 200 slots and a session killer
def test_workers_survive_connections_dropped_while_preparing_and_at_the_barrier(
    postgres_url, stub_study
):
    register(postgres_url, stub_study(toy_study(coarse=200, fine=8)))
    killer = Killer(os.environ[PG_ENV], postgres_url, every=0.25)
    killer.start()
    try:
        procs = [start_worker(postgres_url, sleep=0.02) for _ in range(4)]
        outs = finish(procs, timeout=240)
    finally:
        killed = killer.stop()
    assert killed > 20, killed
    assert all(p.returncode == 0 for p in procs), [o[-3000:] for o in outs]
    assert all("Traceback" not in o for o in outs), [o[-3000:] for o in outs]
    assert_exact(postgres_url)
    for stage in ("coarse", "fine"):
        assert set(slot_counts(postgres_url, stage).values()) == {1}, stage


@pytest.mark.slow  # the outage must outlast the 10 s a one-shot command waits
@pytest.mark.postgres
def test_a_worker_started_during_a_database_outage_waits_it_out(postgres_url, stub_study):
    """Found by the fault benchmark on CI: a worker whose database was away for more than
    10 s as it started exited 1, because the read that finds its spec waited only as long
    as a one-shot command does, not as long as the worker."""
    import sqlalchemy as sa

    from hpsearch.api import COMMAND_WAIT_S

    register(postgres_url, stub_study(toy_study(coarse=20, fine=4)))
    name = postgres_url.rsplit("/", 1)[1]
    admin = sa.create_engine(os.environ[PG_ENV], isolation_level="AUTOCOMMIT")
    with admin.connect() as c:  # the server refuses the database, as while it restarts
        c.exec_driver_sql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        c.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        )
    try:
        worker = start_worker(postgres_url, sleep=0.01)
        time.sleep(COMMAND_WAIT_S + 5)
        assert worker.poll() is None, worker.communicate()[0][-3000:]
    finally:
        with admin.connect() as c:
            c.exec_driver_sql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        admin.dispose()
    [out] = finish([worker])
    assert worker.returncode == 0, out[-3000:]
    assert "retrying in" in out, "the worker never met the outage; the test proves nothing"
    assert_exact(postgres_url)


@pytest.mark.postgres
def test_a_connection_dropped_while_the_lease_table_is_created_is_retried(postgres_url):
    """Found by the fault benchmark: a worker starting while sessions were killed died
    with AdminShutdown, because creating the lease table ran outside the retry policy."""
    import sqlalchemy as sa

    store = st.SearchStore.open(postgres_url)
    admin = sa.create_engine(os.environ[PG_ENV], isolation_level="AUTOCOMMIT")
    dropped: list[int] = []

    @sa.event.listens_for(store.dashboard_storage().engine, "before_cursor_execute")
    def drop_this_session(conn, cursor, statement, *args) -> None:
        if "hpsearch_leases" in statement and not dropped:
            dropped.append(cursor.connection.info.backend_pid)
            with admin.connect() as c:
                c.exec_driver_sql(f"SELECT pg_terminate_backend({dropped[0]})")
            time.sleep(0.2)  # the session is gone before its statement arrives

    lease = store.lease("toy/coarse", owner="test", duration_s=LEASE_S)
    admin.dispose()
    assert dropped, "the lease table was not created here; the test proves nothing"
    assert lease.acquire()


# -- 4. damaged and read-only SQLite files ----------------------------------------------


@pytest.fixture(scope="module")
def launched_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished search's folder: its study file and its SQLite file (closed cleanly: no
    -wal or -shm beside it), launched once for the tests that damage copies of it."""
    folder = tmp_path_factory.mktemp("launched")
    (folder / "toy.toml").write_text(toy_study(coarse=40, fine=4))
    r = hpsearch("launch", "toy.toml", cwd=folder)
    assert r.returncode == 0, r.stderr
    return folder


@pytest.fixture
def launched(launched_once: Path, tmp_path: Path) -> Path:
    """A copy of the finished search's folder of its own: the test's SQLite file."""
    for name in ("toy.toml", "hpsearch.db"):
        shutil.copy(launched_once / name, tmp_path / name)
    return tmp_path / "hpsearch.db"


COMMANDS = (("status", "toy"), ("report", "toy"), ("launch", "toy.toml"))


def one_line_error(r: subprocess.CompletedProcess) -> str:
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert "Traceback" not in r.stderr and len(errors) == 1, r.stderr[-3000:]
    return errors[0]


def test_a_damaged_sqlite_file_gives_one_line_and_exit_1(launched):
    import sqlite3

    damaged = launched.with_name("damaged.db")
    shutil.copy(launched, damaged)
    conn = sqlite3.connect(damaged)
    query = "SELECT rootpage FROM sqlite_master WHERE name = 'trial_values'"
    page = conn.execute(query).fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with damaged.open("r+b") as f:  # the header and schema stay valid; the results do not
        f.seek((page - 1) * size)
        f.write(random.Random(0).randbytes(size))
    for command in COMMANDS:
        r = hpsearch(*command, "--storage", "sqlite:///damaged.db", cwd=launched.parent)
        assert r.returncode == 1, (command, r.stderr[-3000:])
        assert "the database is damaged" in one_line_error(r), command


def test_a_file_that_is_not_a_database_gives_one_line_and_exit_2(launched):
    launched.with_name("notes.db").write_text("these are my notes, not a database\n" * 200)
    for command in COMMANDS:
        r = hpsearch(*command, "--storage", "sqlite:///notes.db", cwd=launched.parent)
        assert r.returncode == 2, (command, r.stderr[-3000:])
        assert "not an SQLite database" in one_line_error(r), command


@pytest.fixture
def read_only_folder(tmp_path: Path):
    """A folder nobody can write to: for root (whom chmod does not stop) a read-only bind
    mount, else chmod. Yields the folder; restores it afterwards."""
    src, folder = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    folder.mkdir()
    if os.geteuid() != 0:
        yield src, src, lambda: src.chmod(0o555)
        src.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "--bind", str(src), str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot bind-mount a folder here: {mounted.stderr.decode().strip()}")
    try:

        def seal() -> None:
            r = subprocess.run(
                ["mount", "-o", "remount,bind,ro", str(folder)], capture_output=True, text=True
            )
            if r.returncode != 0:
                pytest.skip(f"cannot remount read-only here: {r.stderr.strip()}")

        yield src, folder, seal
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_status_and_report_read_a_read_only_database(launched, read_only_folder):
    src, folder, seal = read_only_folder
    shutil.copy(launched, src / "hpsearch.db")
    (src / "hpsearch.db").chmod(0o444)
    seal()
    with pytest.raises(OSError):
        (folder / "probe").write_text("")
    url = f"sqlite:///{folder / 'hpsearch.db'}"
    r = hpsearch("status", "toy", "--storage", url, cwd=launched.parent)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "coarse         40/40   done" in r.stdout
    r = hpsearch("report", "toy", "--storage", url, cwd=launched.parent)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "stage coarse: 40/40 trials" in r.stdout
    assert sorted(p.name for p in folder.iterdir()) == ["hpsearch.db"]


# -- 5. storage URLs that can never work --------------------------------------------------


def at_once(took: float) -> bool:
    """Sooner than a command that retried would give up: a one-shot command retries an
    unreachable database for COMMAND_WAIT_S. (A fixed few seconds failed on loaded cores,
    where starting Python alone can take that long.)"""
    from hpsearch.api import COMMAND_WAIT_S

    return took < COMMAND_WAIT_S


def test_an_sqlite_file_in_a_missing_folder_fails_at_once_naming_the_folder(tmp_path):
    (tmp_path / "toy.toml").write_text(toy_study())
    for command in (("status", "toy"), ("launch", "toy.toml")):
        start = time.monotonic()
        r = hpsearch(*command, "--storage", "sqlite:///no_such_dir/x.db", cwd=tmp_path)
        assert at_once(time.monotonic() - start), command
        assert "retrying" not in r.stderr, r.stderr
        assert r.returncode == 2, r.stderr
        assert "no_such_dir does not exist" in one_line_error(r)
    assert list(tmp_path.iterdir()) == [tmp_path / "toy.toml"]


def test_report_in_a_folder_without_the_database_creates_none(tmp_path):
    for command in (("report", "toy"), ("status", "toy")):
        r = hpsearch(*command, cwd=tmp_path)
        assert r.returncode == 2, r.stderr
        assert "no such SQLite file hpsearch.db" in one_line_error(r)
    assert not (tmp_path / "hpsearch.db").exists()


@pytest.mark.postgres
@pytest.mark.parametrize("wrong", ["database", "role"])
def test_a_wrong_postgresql_database_or_role_fails_at_once(postgres_url, tmp_path, wrong):
    from sqlalchemy.engine import make_url

    url = make_url(postgres_url)
    url = url.set(database="no_such_db") if wrong == "database" else url.set(username="nobody")
    start = time.monotonic()
    r = hpsearch("status", "toy", "--storage", url.render_as_string(), cwd=tmp_path)
    assert at_once(time.monotonic() - start)
    assert "retrying" not in r.stderr, r.stderr
    assert r.returncode == 2, r.stderr
    name = "no_such_db" if wrong == "database" else "nobody"
    assert f'{wrong} "{name}" does not exist' in one_line_error(r)


# -- 6. two launches racing to register one name ----------------------------------------


def test_of_two_specs_registered_at_once_under_one_name_exactly_one_wins(storage_url, tmp_path):
    rounds = 10
    outcomes: dict[int, list[object]] = {i: [] for i in range(rounds)}

    def spec(i: int, seed: int):
        data = {
            "name": f"race{i}",
            "objective": "stubs:quadratic",
            "metric": "loss",
            "seed": seed,
            "space": {"lr": {"low": 1e-5, "high": 1.0, "log": True}},
            "stage": [{"name": "coarse", "trials": 4, "epochs": 1}],
        }
        return parse_spec(data, base_dir=str(tmp_path))

    def launch(seed: int, barrier: threading.Barrier) -> None:
        store = st.SearchStore.open(storage_url)  # its own connections, as a process has
        for i in range(rounds):
            barrier.wait()
            try:
                outcomes[i].append(register_search(store, spec(i, seed)))
            except SpecMismatch as exc:
                outcomes[i].append(exc)

    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=launch, args=(seed, barrier)) for seed in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reader = st.SearchStore.open(storage_url)
    for i, results in outcomes.items():
        assert sum(getattr(r, "new", False) is True for r in results) == 1, results
        (refused,) = [r for r in results if isinstance(r, SpecMismatch)]
        assert "seed" in str(refused)
        stored = reader.find_spec(f"race{i}")
        assert stored is not None and f"seed: stored {stored.seed}" in str(refused)


# -- 7. one note per stage, however many workers finish it ------------------------------


@pytest.mark.slow_on("sqlite")
def test_workers_finishing_a_stage_together_write_its_note_once(storage_url, stub_study):
    register(storage_url, stub_study(toy_study(objective="sleepy", coarse=4, fine=4)))
    procs = [start_worker(storage_url, sleep=0.5) for _ in range(4)]
    outs = finish(procs)
    assert all(p.returncode == 0 for p in procs), [o[-3000:] for o in outs]
    assert_exact(storage_url)
    for stage in ("coarse", "fine"):
        writers = [o for o in outs if f"wrote the dashboard note of toy/{stage}" in o]
        assert len(writers) == 1, (stage, len(writers))
        assert get_note(stage_study(storage_url, "toy", stage)).startswith(f"## Stage `{stage}`")
