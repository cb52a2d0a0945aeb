"""Issue 20, item 5: Ctrl-C or SIGTERM while a huge stage is being prepared stops the
launch within seconds, and leaves the stage not ready (no ``ready`` mark; the slots queued
so far stay), so that the next preparer queues exactly the rest. A real launch, a real
signal."""

from __future__ import annotations

import signal
import sqlite3
import time

import pytest
from stubs import toy_study
from test_workers import launch, wait_for

from hpsearch import store as st
from hpsearch.engine.stages import prepare_stage
from hpsearch.objectives.catalog import load_spec

TRIALS = 40_000


def queued(db) -> int:
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            return conn.execute("SELECT count(*) FROM trials").fetchone()[0]
    except sqlite3.Error:  # not created yet, or busy
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_while_a_huge_stage_is_prepared_leaves_it_unprepared(tmp_path, stub_study, signum):
    db = tmp_path / "search.db"
    url = f"sqlite:///{db}"
    path = stub_study(toy_study(coarse=TRIALS, fine=2))
    proc = launch(url, path, "-v")
    wait_for(lambda: queued(db) > 0, timeout=120, what="slots to be queued")
    proc.send_signal(signum)
    sent = time.monotonic()
    out, _ = proc.communicate(timeout=60)
    took = time.monotonic() - sent
    assert proc.returncode != 0 and "Traceback" not in out, out[-3000:]
    assert took < 5, f"{took:.1f} s\n{out[-3000:]}"
    assert "stopped preparing toy/coarse" in out, out[-3000:]
    store = st.SearchStore.open(url)
    stage = store.find_stage("toy", "coarse")
    assert stage is not None and not store.stage_attrs(stage).get(st.ATTR_READY)
    partial = queued(db)
    assert 0 < partial < TRIALS
    # the next preparer queues the rest, each slot once
    prepare_stage(store, load_spec(path), 0, owner="test")
    assert store.stage_attrs(stage)[st.ATTR_READY]
    with sqlite3.connect(db) as conn:
        slots = [int(v) for (v,) in conn.execute(
            "SELECT value_json FROM trial_user_attributes WHERE key = 'slot'")]  # fmt: skip
    assert sorted(slots) == list(range(TRIALS))
