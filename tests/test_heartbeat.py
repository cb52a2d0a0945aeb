"""Issue 20, item 6: a trial whose worker is alive is not given up, even while its
objective holds the interpreter lock in a C call past the grace period; a worker's
heartbeat process beats for it from outside, stops while it is frozen, and dies with it.

Real worker processes on SQLite and PostgreSQL, with the grace period of the other worker
tests (3 s): the objective holds the lock for 7 s, more than twice that.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from stubs import toy_study
from test_workers import (
    GRACE,
    TESTS,
    assert_exact,
    env_for,
    finish,
    register,
    running_trial_of,
    trials_of,
    wait_for,
)


def start(url: str, hold: int) -> subprocess.Popen:
    env = {**env_for(url), "STUB_HOLD": str(hold)}
    return subprocess.Popen(
        [sys.executable, "-m", "hpsearch.cli", "-v", "worker", "toy", "--threads", "1",
         "--grace-period", str(GRACE), "--no-progress"],
        env=env, cwd=TESTS, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux's /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.slow
def test_a_trial_holding_the_interpreter_past_the_grace_period_completes_once(
    storage_url, stub_study
):
    register(storage_url, stub_study(toy_study(objective="holds_the_gil", coarse=3, fine=1)))
    procs = [start(storage_url, hold=7) for _ in range(2)]
    outs = finish(procs, timeout=180)
    assert all(p.returncode == 0 for p in procs), [o[-2000:] for o in outs]
    assert not any("while this worker was away" in o or "Traceback" in o for o in outs), outs
    assert_exact(storage_url)
    for study in ("toy/coarse", "toy/fine"):
        trials = trials_of(storage_url, study)
        assert [t.state.name for t in trials] == ["COMPLETE"] * len(trials), study


@pytest.mark.slow
def test_a_held_interpreter_past_trial_timeout_is_ended_by_the_heartbeat_process(
    storage_url, stub_study
):
    body = toy_study(objective="holds_the_gil", coarse=2, fine=1)
    register(storage_url, stub_study(body.replace("seed = 0", "seed = 0\ntrial_timeout = 1")))
    worker = start(storage_url, hold=120)
    held = wait_for(lambda: running_trial_of(storage_url, worker.pid), what="a trial")[0]
    began = time.monotonic()
    out = finish([worker], timeout=60)[0]
    # 1 s limit + 1 s of grace for the worker's own watchdog, which never runs; then the
    # heartbeat process waits one grace period (3 s) more and kills the worker
    assert worker.returncode == -signal.SIGKILL, out[-2000:]
    assert time.monotonic() - began < 20
    trial = trials_of(storage_url, "toy/coarse")[held.number]
    assert trial.state.name == "FAIL"
    assert "timed out after 1 s" in trial.user_attrs["fail_reason"], trial.user_attrs
    assert "held the worker's interpreter past its trial_timeout" in out


@pytest.mark.slow
def test_the_heartbeat_process_dies_with_its_worker(sqlite_url, stub_study):
    register(sqlite_url, stub_study(toy_study(objective="holds_the_gil", coarse=2, fine=1)))
    worker = start(sqlite_url, hold=30)
    wait_for(lambda: running_trial_of(sqlite_url, worker.pid), what="a trial")
    [pulse] = children(worker.pid)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    wait_for(lambda: not Path(f"/proc/{pulse}").exists() or _zombie(pulse), timeout=5,
             what="the heartbeat process to exit")  # fmt: skip


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
