"""Issue 20, items 1 and 8: a dark route to PostgreSQL, and the connection footprint.

Real processes and a real PostgreSQL: the route goes dark through a TCP proxy that stops
forwarding while its sockets stay open (``benchmarks/faults.py``'s ``DarkRoute``), so
nothing is refused and nothing answers; the footprint is read from ``pg_stat_activity``,
each connection named by the process that holds it (``application_name``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from stubs import toy_study
from test_workers import TESTS, assert_exact, env_for

from hpsearch.store import network
from hpsearch.store.urls import mask_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from faults import DarkRoute  # noqa: E402

PG_ENV = "HPSEARCH_TEST_POSTGRES_URL"
BOUND = 12  # $HPSEARCH_UNREACHABLE_S in these tests: seconds, not a minute


def launch(url: str, path: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hpsearch.cli", "launch", str(path), "--grace-period", "2",
         "--no-progress", *extra],
        env={**env_for(url, sleep=0.2), **(env or {})},
        cwd=TESTS,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip


def completed(url: str, study: str = "toy/coarse") -> int:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as c:
            return c.exec_driver_sql(
                "SELECT count(*) FROM trials t JOIN studies s USING (study_id) "
                f"WHERE s.study_name = '{study}' AND t.state = 'COMPLETE'"
            ).scalar()
    except sa.exc.ProgrammingError:
        return 0
    finally:
        engine.dispose()


def test_the_network_limits_derive_from_one_documented_bound(monkeypatch):
    monkeypatch.delenv(network.ENV_UNREACHABLE, raising=False)
    args = network.engine_kwargs(
        "postgresql://u@h/db", idle_in_transaction_ms=30_000, lock_timeout_ms=15_000
    )["connect_args"]
    assert args["connect_timeout"] == 10 and args["keepalives"] == 1
    assert args["keepalives_idle"] + args["keepalives_interval"] * args["keepalives_count"] < 60
    assert args["tcp_user_timeout"] == 15_000
    assert "statement_timeout=28000" in args["options"]
    lim = network.limits()
    assert lim.stall_s < 60 and lim.silent_budget_s + lim.connect_timeout_s <= 60
    monkeypatch.setenv(network.ENV_UNREACHABLE, "2")
    with pytest.raises(network.BadUnreachableBound, match="HPSEARCH_UNREACHABLE_S='2'.*5 to"):
        network.limits()


@pytest.mark.slow  # real launches through the storage (15-70 s)
@pytest.mark.postgres
def test_a_dark_route_is_declared_unreachable_within_the_bound_and_a_relaunch_resumes(
    postgres_url, stub_study
):
    route = DarkRoute()
    route.start()
    dark = route.url(postgres_url)
    path = stub_study(toy_study(objective="sleepy", coarse=40, fine=4))
    proc = launch(dark, path, "--workers", "2", env={network.ENV_UNREACHABLE: str(BOUND)})
    try:
        deadline = time.monotonic() + 90
        while completed(postgres_url) < 4 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[0][-3000:]
            time.sleep(0.2)
        route.freeze()
        start = time.monotonic()
        try:
            out, _ = proc.communicate(timeout=BOUND + 60)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"the launcher hung on a dark route:\n{proc.communicate()[0][-3000:]}")
        took = time.monotonic() - start
    finally:
        route.close()
    assert proc.returncode == 1, out[-3000:]
    assert took <= BOUND + 4, f"declared unreachable after {took:.1f} s\n{out[-3000:]}"
    assert "Traceback" not in out, out[-3000:]
    last = [line for line in out.splitlines() if line.startswith("Error:")]
    assert last and mask_url(dark) in last[-1] and "has not answered" in last[-1], out[-3000:]
    # The route is back (straight to the server): a relaunch finishes with nothing lost.
    again = launch(postgres_url, path, "--workers", "2")
    out, _ = again.communicate(timeout=240)
    assert again.returncode == 0, out[-3000:]
    assert_exact(postgres_url)


@pytest.mark.slow  # real launches through the storage (15-70 s)
@pytest.mark.postgres
def test_a_worker_on_a_dark_route_exits_1_naming_the_storage_within_the_bound(
    postgres_url, stub_study
):
    from test_workers import register

    register(postgres_url, stub_study(toy_study(objective="sleepy", coarse=40, fine=2)))
    route = DarkRoute()
    route.start()
    dark = route.url(postgres_url)
    env = {**env_for(dark, sleep=0.2), network.ENV_UNREACHABLE: str(BOUND)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpsearch.cli", "worker", "toy", "--grace-period", "8",
         "--no-progress"],
        env=env, cwd=TESTS, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while completed(postgres_url) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        route.freeze()
        start = time.monotonic()
        out, _ = proc.communicate(timeout=BOUND + 60)
        took = time.monotonic() - start
    finally:
        route.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out[-3000:]
    assert took <= BOUND + 4, f"gave up after {took:.1f} s\n{out[-3000:]}"
    assert "Traceback" not in out, out[-3000:]
    assert f"the storage {mask_url(dark)} stayed unreachable" in out, out[-3000:]


def _sample(admin: str, database: str, stop: threading.Event, peak: Counter) -> None:
    engine = sa.create_engine(admin, poolclass=sa.pool.NullPool)
    while not stop.is_set():
        with engine.connect() as c:
            rows = c.exec_driver_sql(
                "SELECT application_name, count(*) FROM pg_stat_activity "
                f"WHERE datname = '{database}' GROUP BY 1"
            ).all()
        for name, n in rows:
            peak[name] = max(peak[name], n)
        peak["(all)"] = max(peak["(all)"], sum(n for _, n in rows))
        time.sleep(0.05)
    engine.dispose()


@pytest.mark.slow  # real launches through the storage (15-70 s)
@pytest.mark.postgres
def test_a_launch_holds_at_most_2_connections_per_process(postgres_url, stub_study):
    path = stub_study(toy_study(objective="sleepy", coarse=12, fine=4))
    peak: Counter = Counter()
    stop = threading.Event()
    sampler = threading.Thread(
        target=_sample, args=(os.environ[PG_ENV], postgres_url.rsplit("/", 1)[1], stop, peak)
    )
    sampler.start()
    try:
        proc = launch(postgres_url, path, "--workers", "3")
        out, _ = proc.communicate(timeout=240)
    finally:
        stop.set()
        sampler.join()
    assert proc.returncode == 0, out[-3000:]
    processes = {k: v for k, v in peak.items() if k.startswith("hpsearch:")}
    assert len(processes) >= 4, peak  # the launcher and its 3 workers at least
    assert max(processes.values()) <= network.MAX_CONNECTIONS, peak
    assert_exact(postgres_url)


@pytest.fixture
def limited_role(postgres_url):
    """A login role owning the test's database, allowed 3 connections: what a launch with
    one worker holds, 2 plus 1 while a finished stage's note is drawn beside the running
    worker (README; a superuser is exempt from CONNECTION LIMIT)."""
    admin = sa.create_engine(os.environ[PG_ENV], isolation_level="AUTOCOMMIT")
    role = f"hps_role_{uuid.uuid4().hex[:8]}"
    database = postgres_url.rsplit("/", 1)[1]
    with admin.connect() as c:
        c.exec_driver_sql(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 3")
        c.exec_driver_sql(f"ALTER DATABASE {database} OWNER TO {role}")
    url = sa.engine.make_url(postgres_url).set(username=role).render_as_string(False)
    try:
        yield url
    finally:
        with admin.connect() as c:
            c.exec_driver_sql(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"
            )
            c.exec_driver_sql(f"ALTER DATABASE {database} OWNER TO postgres")
        inside = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
        with inside.connect() as c:
            c.exec_driver_sql(f"REASSIGN OWNED BY {role} TO postgres")
            c.exec_driver_sql(f"DROP OWNED BY {role}")
        inside.dispose()
        with admin.connect() as c:
            c.exec_driver_sql(f"DROP ROLE {role}")
        admin.dispose()


@pytest.mark.slow  # real launches through the storage (15-70 s)
@pytest.mark.postgres
def test_the_connection_limit_is_retried_with_backoff_and_named(limited_role, stub_study):
    path = stub_study(toy_study(coarse=6, fine=2))
    # Every connection the role may hold is taken for 4 s: the launch waits, says why
    # (the server's connection limit) and then runs to the end in its 3 connections.
    holder = sa.create_engine(limited_role, poolclass=sa.pool.NullPool)
    held = [holder.connect() for _ in range(3)]
    proc = launch(limited_role, path)
    time.sleep(4)
    for c in held:
        c.close()
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    assert "no connection slot free" in out and "retrying in" in out, out[-3000:]
    assert_exact(limited_role)
