"""Shared fixtures: storage URLs for each real backend, and stub objectives.

PostgreSQL tests use the server named by ``HPSEARCH_TEST_POSTGRES_URL`` (``.ci/run`` sets
it and starts the server); each test gets a fresh database of its own, dropped afterwards.
Where no server is reachable they skip with the reason; with ``CI=true`` they fail instead,
because on CI they must run.

The default run leaves out the tests marked ``slow`` (``python -m pytest -m slow`` runs
them); ``@pytest.mark.slow_on("postgres")`` marks a test slow on that backend only, so the
default run still has it on the other one.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))  # so `stubs:...` objectives import in-process and in workers

PG_ENV = "HPSEARCH_TEST_POSTGRES_URL"


def _postgres_admin_url() -> str | None:
    return os.environ.get(PG_ENV)


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        backend = getattr(item, "callspec", None) and item.callspec.params.get("storage_url")
        if any(backend in mark.args for mark in item.iter_markers("slow_on")):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'search.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    admin = _postgres_admin_url()
    if not admin:
        if os.environ.get("CI"):
            pytest.fail(f"{PG_ENV} is not set on CI; .ci/run must set it")
        pytest.skip(f"no PostgreSQL: set {PG_ENV}=postgresql://postgres@127.0.0.1:5432/test")
    import sqlalchemy as sa

    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    name = f"hps_{uuid.uuid4().hex[:12]}"
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    except sa.exc.OperationalError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL at {PG_ENV} is not reachable: {exc.orig}")
    url = admin.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            )
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once per real backend."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def stub_study(tmp_path: Path):
    """Write a study file using a stub objective from tests/stubs.py; returns a writer."""

    def write(body: str, name: str = "study.toml") -> Path:
        path = tmp_path / name
        path.write_text(body)
        return path

    return write
