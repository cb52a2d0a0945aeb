"""``hpsearch list`` and ``hpsearch delete``: searches handled whole, through the CLI."""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from cli_runner import TESTS, hpsearch
from stored import let_time_pass, stage_study
from stubs import toy_study


def launch(tmp_path: Path, url: str, body: str, *, command: str = "launch") -> None:
    study = tmp_path / "study.toml"
    study.write_text(body)
    r = hpsearch(command, str(study), "--storage", url, cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def studies(url: str, search: str) -> list[str]:
    return sorted(n for n in optuna.get_all_study_names(url) if n.startswith(search + "/"))


def listed(tmp_path: Path, url: str, *args: str) -> dict[str, str]:
    r = hpsearch("list", "--storage", url, *args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return {line.split()[0]: line for line in r.stdout.splitlines()[3:]}


def state(row: str) -> str:
    """A listed search's state: the words ``status`` leads with (``SearchView.state``)."""
    return re.split(r"\s{2,}", row)[1]  # the table's columns: two spaces or more apart


@pytest.mark.slow_on("postgres")
def test_list_shows_each_search_whole_and_delete_removes_it_whole(storage_url, tmp_path):
    launch(tmp_path, storage_url, toy_study(coarse=12, fine=4), command="compare")
    launch(tmp_path, storage_url, toy_study(name="other", coarse=4, fine=2))
    stop = {"rule": "3 failures, no success", "failures": 3, "reason": "KeyError: 'x'", "count": 3}
    stage_study(storage_url, "other", "fine").set_user_attr("stopped", stop)
    launch(tmp_path, storage_url, toy_study(name="half", coarse=4, fine=2))
    optuna.delete_study(study_name="half/coarse", storage=storage_url)  # by hand: half a search

    rows = listed(tmp_path, storage_url)
    toy = rows["toy"]
    assert state(toy) == "complete" and "coarse 12/12, fine 4/4" in toy and "grid, random" in toy
    best = stage_study(storage_url, "toy", "fine").best_value  # the longest runs' best
    assert f"{best:.6g} (fine)" in toy
    assert state(rows["other"]) == "stopped on failures (stage fine: 3 failures: KeyError: 'x')"
    assert "hpsearch delete half removes the rest" in rows["half:"]

    assert studies(storage_url, "toy") == [
        "toy/coarse", "toy/fine", "toy/grid-baseline", "toy/random-baseline"
    ]  # fmt: skip
    r = hpsearch("delete", "toy", "--yes", "--storage", storage_url, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "toy/grid-baseline" in r.stderr and studies(storage_url, "toy") == []
    r = hpsearch("delete", "half", "--yes", "--storage", storage_url, cwd=tmp_path)
    assert r.returncode == 0 and studies(storage_url, "half") == [], r.stderr
    assert set(listed(tmp_path, storage_url)) == {"other"}
    assert studies(storage_url, "other") == ["other/coarse", "other/fine"]  # untouched

    r = hpsearch("delete", "toy", "--yes", "--storage", storage_url, cwd=tmp_path)
    assert r.returncode == 2 and "no search named 'toy' (searches here: other)" in r.stderr


@pytest.mark.slow_on("sqlite")
def test_delete_is_refused_while_a_heartbeat_is_fresh_unless_forced(storage_url, tmp_path):
    study = tmp_path / "study.toml"
    study.write_text(toy_study(objective="sleepy", coarse=4, fine=2))
    env = {k: v for k, v in os.environ.items() if k != "HPSEARCH_STORAGE"}
    env.update(PYTHONPATH=os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]))
    env.update(STUB_SLEEP="5")
    worker = subprocess.Popen(
        [sys.executable, "-m", "hpsearch.cli", "launch", str(study), "--storage", storage_url],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _running(storage_url):
            assert time.monotonic() < deadline, "the worker never started a trial"
            time.sleep(0.2)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)  # dead, but its heartbeat is still fresh
        worker.wait()

    assert state(listed(tmp_path, storage_url)["toy"]) == "running"
    r = hpsearch("delete", "toy", "--yes", "--storage", storage_url, cwd=tmp_path)
    assert r.returncode == 2 and "1 trial(s) running" in r.stderr and "--force" in r.stderr
    r = hpsearch("delete", "toy", "--force", "--storage", storage_url, cwd=tmp_path)
    assert r.returncode == 2 and "no terminal to ask on; pass --yes" in r.stderr
    assert studies(storage_url, "toy") == ["toy/coarse"]

    let_time_pass(storage_url, 60)  # its heartbeat is a minute old now
    assert state(listed(tmp_path, storage_url, "--grace-period", "2")["toy"]) == "not running"
    r = hpsearch("delete", "toy", "--yes", "--force", "--storage", storage_url, cwd=tmp_path)
    assert r.returncode == 0 and studies(storage_url, "toy") == [], r.stderr

    r = hpsearch(
        "launch", str(study), "--storage", storage_url, cwd=tmp_path, env={"STUB_SLEEP": "0"}
    )
    assert r.returncode == 0 and "launched search toy" in r.stderr, r.stderr
    for stage, trials in (("coarse", 4), ("fine", 2)):
        done = stage_study(storage_url, "toy", stage).get_trials()
        assert len(done) == trials and {t.state.name for t in done} == {"COMPLETE"}


def _running(url: str) -> bool:
    try:
        trials = stage_study(url, "toy", "coarse").get_trials(deepcopy=False)
    except KeyError:
        return False
    return any(t.state.name == "RUNNING" for t in trials)


@pytest.mark.parametrize(
    ("answer", "deleted"), [pytest.param("n", False, marks=pytest.mark.slow), ("y", True)]
)
def test_delete_asks_on_a_terminal(sqlite_url, tmp_path, answer, deleted):
    launch(tmp_path, sqlite_url, toy_study(coarse=4, fine=2))
    terminal, tty = pty.openpty()
    os.write(terminal, f"{answer}\n".encode())
    r = hpsearch("delete", "toy", "--storage", sqlite_url, cwd=tmp_path, stdin=tty)
    os.close(terminal)
    os.close(tty)
    assert "delete search toy" in r.stdout and "toy/coarse, toy/fine" in r.stdout
    assert r.returncode == (0 if deleted else 1), r.stderr
    assert studies(sqlite_url, "toy") == ([] if deleted else ["toy/coarse", "toy/fine"])


def test_delete_is_refused_while_a_worker_waits_with_no_trial_running(storage_url, tmp_path):
    """A worker between trials, preparing or waiting at a stage barrier has no RUNNING
    trial, yet it is on the search: its own heartbeat row (``hpsearch_workers``) refuses
    the delete, decided in the deleting transaction."""
    import sqlalchemy as sa

    from hpsearch.store.sql.leases import Lease

    study = tmp_path / "study.toml"
    study.write_text(toy_study(coarse=2, fine=2))
    engine = sa.create_engine(storage_url)
    # Another "worker" holds the fine stage's preparation lease, so this worker waits for
    # it to be prepared, with the coarse stage done and nothing running.
    held = Lease(engine, "toy/fine", duration_s=600, owner="test:1")
    assert held.acquire()
    env = {k: v for k, v in os.environ.items() if k != "HPSEARCH_STORAGE"}
    env.update(PYTHONPATH=os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]))
    worker = subprocess.Popen(
        [sys.executable, "-m", "hpsearch.cli", "launch", str(study), "--storage", storage_url],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _waiting_for_fine(storage_url):
            assert worker.poll() is None, "the worker exited"
            assert time.monotonic() < deadline, "the worker never finished the coarse stage"
            time.sleep(0.2)
        assert not _running(storage_url)
        assert state(listed(tmp_path, storage_url)["toy"]) == "running"  # attached: on it
        r = hpsearch("delete", "toy", "--yes", "--storage", storage_url, cwd=tmp_path)
        assert r.returncode == 2, r.stderr
        assert "1 worker(s) attached" in r.stderr and "--force" in r.stderr, r.stderr
        assert studies(storage_url, "toy") == ["toy/coarse", "toy/fine"]
        assert worker.poll() is None  # undisturbed
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        held.release()
        engine.dispose()
    r = hpsearch("delete", "toy", "--yes", "--force", "--storage", storage_url, cwd=tmp_path)
    assert r.returncode == 0 and studies(storage_url, "toy") == [], r.stderr


def _waiting_for_fine(url: str) -> bool:
    try:
        coarse = stage_study(url, "toy", "coarse").get_trials(deepcopy=False)
        stage_study(url, "toy", "fine")
    except KeyError:
        return False
    return len(coarse) == 2 and all(t.state.name == "COMPLETE" for t in coarse)
