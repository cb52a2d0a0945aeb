"""Issue 20, item 10a: an SQLite database whose ``-wal`` and ``-shm`` files are removed
under a running launch. SQLite answers every new connection with "disk I/O error" from
then on; that is a permanent error (no wait cures it), named with the files, and the
launch exits 1 within seconds instead of retrying for two minutes and calling the
database "unreachable"."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from stubs import toy_study
from test_workers import finish, launch, register, start_worker, trials_of, wait_for

from hpsearch.store import policy


def test_a_disk_io_error_is_permanent():
    assert policy.error_kind(sqlite3.OperationalError("disk I/O error")) == "broken"


def test_the_message_names_the_missing_file(tmp_path):
    db = tmp_path / "search.db"
    db.write_bytes(b"")
    Path(f"{db}-wal").write_bytes(b"")
    text = policy.sqlite_io_error(db, "disk I/O error")
    assert f"{db}-shm is missing" in text and f"{db}-wal or index {db}-shm" in text


@pytest.mark.slow
def test_removing_the_wal_files_under_a_launch_fails_at_once_naming_them(tmp_path, stub_study):
    db = tmp_path / "search.db"
    url = f"sqlite:///{db}"
    proc = launch(
        url, stub_study(toy_study(objective="sleepy", coarse=40, fine=4)), "--workers", "2"
    )
    wait_for(lambda: db.exists() and _completed(url) >= 3, what="trials to complete")
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink()
    removed = time.monotonic()
    out, _ = proc.communicate(timeout=120)
    took = time.monotonic() - removed
    assert proc.returncode == 1, out[-3000:]
    assert took < 30, f"{took:.0f} s\n{out[-3000:]}"
    assert "stayed unreachable" not in out and "Traceback" not in out, out[-3000:]
    # named by whichever sees it first: the launcher's store (a disk I/O error on a new
    # connection) or a worker's heartbeat process (the worker holds deleted files open)
    assert f"{db}-wal" in out and f"{db}-shm" in out and "removed while" in out, out[-3000:]


def _completed(url: str) -> int:
    try:
        return sum(t.state.name == "COMPLETE" for t in trials_of(url, "toy/coarse"))
    except Exception:  # not created yet
        return 0


@pytest.mark.slow
def test_workers_whose_connections_outlive_the_wal_files_are_stopped(tmp_path, stub_study):
    # A worker's open connections write on into the removed log unseen; its heartbeat
    # process's next connection gets the disk I/O error and stops it, naming the files.
    db = tmp_path / "search.db"
    url = f"sqlite:///{db}"
    register(url, stub_study(toy_study(objective="sleepy", coarse=200, fine=4)))
    procs = [start_worker(url, sleep=0.2) for _ in range(2)]
    wait_for(lambda: _completed(url) >= 3, what="trials to complete")
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink()
    removed = time.monotonic()
    outs = finish(procs, timeout=60)
    assert time.monotonic() - removed < 20
    for proc, out in zip(procs, outs, strict=True):
        assert proc.returncode != 0, out[-3000:]
        assert f"{db}-shm and {db}-wal were removed while the worker had them" in out, out[-3000:]
