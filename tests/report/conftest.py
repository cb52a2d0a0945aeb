"""Fixtures of the report tests: a finished stub search."""

from __future__ import annotations

import pytest
from stubs import toy_study

from hpsearch import store as st
from hpsearch.engine.stages import register_search
from hpsearch.engine.worker import WorkerConfig, run_worker
from hpsearch.objectives.catalog import load_spec


@pytest.fixture
def finished_toy(stub_study, sqlite_url):
    """A finished two-stage search over the quadratic stub (20 + 8 trials): its URL."""
    spec = load_spec(stub_study(toy_study(coarse=20, fine=8)))
    register_search(st.SearchStore.open(sqlite_url), spec)
    run_worker(WorkerConfig(sqlite_url, spec.name))
    return sqlite_url
