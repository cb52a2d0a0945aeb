"""Fail fast, fix and retry, as a user meets them: a broken objective stops the search at
once without burning its budget, and after the fix a relaunch (or ``hpsearch retry``)
finishes it to exact counts. Real processes, real SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections import Counter

import optuna
import pytest
from cli_runner import hpsearch
from stored import stage_study
from stubs import toy_study
from test_workers import assert_exact

from hpsearch import store as st
from hpsearch.core.failures import Outcomes, stop_rule
from hpsearch.core.spec import SpecError
from hpsearch.engine.stages import prepare_stage, register_search
from hpsearch.engine.worker import WorkerConfig, run_worker
from hpsearch.objectives.catalog import load_spec, parse_spec

REASON = "KeyError: 'learning_rate'"
#: Seconds a stub trial takes where workers must overlap.
SLEEP = "0.3"


def launch(url, path, *extra, env=None):
    return hpsearch("launch", str(path), "--storage", url, *extra, cwd=path.parent, env=env)


def coarse_trials(url) -> list[optuna.trial.FrozenTrial]:
    return stage_study(url, "toy", "coarse").get_trials()


def states(trials) -> Counter:
    return Counter(t.state.name for t in trials)


def assert_requeued(trials) -> list[optuna.trial.FrozenTrial]:
    """Every failed attempt was re-queued once, as a copy of its slot; returns them."""
    failed = [t for t in trials if t.state.name == "FAIL"]
    history = [n for t in trials for n in t.system_attrs.get("retry_history", [])]
    assert sorted(history) == sorted(t.number for t in failed)  # each superseded once
    for f in failed:
        copy = trials[f.user_attrs["requeued_as"]]
        assert copy.params == f.params
        assert {k: copy.user_attrs[k] for k in ("slot", "seed", "epochs")} == {
            k: f.user_attrs[k] for k in ("slot", "seed", "epochs")
        }
    return failed


@pytest.mark.slow_on("postgres")
def test_a_broken_objective_stops_after_3_failures_and_a_fix_finishes_exactly(
    storage_url, tmp_path
):
    study = tmp_path / "toy.toml"
    study.write_text(toy_study(objective="broken", coarse=8, fine=4))
    start = time.monotonic()
    r = launch(storage_url, study)
    took = time.monotonic() - start
    assert r.returncode == 1, r.stderr
    assert "search toy stopped in stage coarse: 3 trials failed and none succeeded" in r.stderr
    assert (r.stdout + r.stderr).count(REASON) == 1  # one reason line, not a traceback each
    assert "stubs.py:" in r.stderr and 'in broken: return params["learning_rate"]' in r.stderr
    assert "Traceback" not in r.stderr and "promising region" not in r.stdout
    assert took < 30, f"the stop took {took:.1f} s"

    trials = coarse_trials(storage_url)
    assert states(trials) == {"WAITING": 8, "FAIL": 3}  # the budget is not burned
    for f in assert_requeued(trials):
        assert f.user_attrs["fail_reason"] == REASON
        assert "Traceback" in f.user_attrs["fail_traceback"]
    assert st.SearchStore.open(storage_url).stage_counts("toy")["coarse"].done == 0
    with pytest.raises(KeyError):
        stage_study(storage_url, "toy", "fine")  # never prepared from failures

    r = hpsearch("status", "toy", "--storage", storage_url, cwd=tmp_path)
    assert r.returncode == 0 and f"stopped: 3 failures: {REASON}" in r.stdout

    # A worker (a cluster job restarting, say) finds it stopped and runs nothing.
    r = hpsearch("worker", "toy", "--storage", storage_url, "--no-progress", cwd=tmp_path)
    assert r.returncode == 1 and "stopped in stage coarse" in r.stderr
    assert len(coarse_trials(storage_url)) == 11

    r = launch(storage_url, study, env={"STUB_FIXED": "1"})
    assert r.returncode == 0, r.stderr
    assert "stage coarse was stopped" in r.stderr and "stage fine: 4/4 trials" in r.stdout
    assert_exact(storage_url)
    assert states(coarse_trials(storage_url)) == {"COMPLETE": 8, "FAIL": 3}  # kept as history


@pytest.mark.slow_on("postgres")
def test_two_workers_stop_together(storage_url, tmp_path):
    """Each worker checks the stop mark before every claim, so once the third failure is
    recorded the other worker runs at most the one trial it already had: at most
    max_failures + (workers - 1) = 4 attempts, all re-queued."""
    study = tmp_path / "toy.toml"
    study.write_text(toy_study(objective="broken", coarse=20, fine=4))
    start = time.monotonic()
    r = launch(storage_url, study, "--workers", "2", env={"STUB_SLEEP": SLEEP})
    took = time.monotonic() - start
    assert r.returncode == 1, r.stderr
    assert (r.stdout + r.stderr).count(REASON) == 1 and "failed; see their log" not in r.stderr
    trials = coarse_trials(storage_url)
    failed = assert_requeued(trials)
    assert 3 <= len(failed) <= 4, len(failed)
    assert states(trials)["WAITING"] == 20 and "RUNNING" not in states(trials)
    assert took < 60, f"the stop took {took:.1f} s"


@pytest.mark.slow_on("postgres")
def test_a_late_failure_rate_stops_the_search(storage_url, tmp_path):
    study = tmp_path / "toy.toml"
    study.write_text(toy_study(objective="fails_late", coarse=20, fine=4))
    r = launch(storage_url, study, env={"STUB_OK": "5"})
    assert r.returncode == 1, r.stderr
    assert "stopped in stage coarse: 6 of its last 10 trials failed" in r.stderr
    assert "OSError: No space left on device (stub)" in r.stderr
    trials = coarse_trials(storage_url)
    assert len(assert_requeued(trials)) == 6
    assert states(trials) == {"COMPLETE": 5, "WAITING": 15, "FAIL": 6}


@pytest.mark.parametrize(
    ("outcomes", "max_failures", "stops"),
    [
        (Outcomes(0, 2, (True, True)), 3, False),
        (Outcomes(0, 3, (True,) * 3), 3, True),
        (Outcomes(0, 50, (True,) * 10), 0, False),  # 0: never stop
        (Outcomes(0, 4, (True,) * 4), 5, False),
        (Outcomes(1, 9, (True,) * 9), 3, False),  # a success: the rate needs 10 trials
        (Outcomes(3, 5, (True, False) * 5), 3, False),  # half is not above half
        (Outcomes(3, 6, (True,) * 6 + (False,) * 4), 3, True),
    ],
)
def test_the_stop_rules(outcomes, max_failures, stops):
    assert (stop_rule(outcomes, max_failures) is not None) == stops


@pytest.mark.slow  # four launches; the stop rules themselves are checked above in-process
def test_max_failures_from_the_file_and_the_command_line(sqlite_url, tmp_path):
    study = tmp_path / "toy.toml"
    study.write_text(toy_study(objective="broken", coarse=8, fine=2, max_failures=1))
    r = launch(sqlite_url, study)
    assert r.returncode == 1 and "1 trial failed and none succeeded" in r.stderr
    # A changed max_failures is no different search: the relaunch is accepted.
    study.write_text(toy_study(objective="broken", coarse=8, fine=2, max_failures=2))
    r = launch(sqlite_url, study)
    assert r.returncode == 1 and "2 trials failed" in r.stderr, r.stderr
    r = launch(sqlite_url, study, "--max-failures", "4", "--workers", "2")
    assert r.returncode == 1 and "trials failed and none succeeded (max_failures = 4)" in r.stderr
    assert len(assert_requeued(coarse_trials(sqlite_url))) in (1 + 2 + 4, 1 + 2 + 4 + 1)


def test_max_failures_is_validated():
    with pytest.raises(
        SpecError, match=r"max_failures: must be an integer >= 0, but got -1; 0: never stop"
    ):
        parse_spec({**_toy_dict(), "max_failures": -1})
    with pytest.raises(SpecError, match="max_failures: must be an integer"):
        parse_spec({**_toy_dict(), "max_failures": "3"})
    assert parse_spec(_toy_dict()).max_failures == 3
    assert "max_failures" not in parse_spec(_toy_dict()).to_dict()  # stored specs unchanged


def _toy_dict() -> dict:
    import tomllib

    return tomllib.loads(toy_study())


@pytest.mark.slow  # five launches and retries; test_launch_retry_failed_... is the quick one
def test_retry_reruns_failed_grid_points_in_place_and_re_prepares_later_stages(
    storage_url, tmp_path
):
    study = tmp_path / "toy.toml"
    # max_failures = 0: the failures are kept (burned) until retried
    study.write_text(
        toy_study(objective="tanh_until_fixed", coarse=16, fine=4, sampler="grid", max_failures=0)
    )
    assert launch(storage_url, study).returncode == 0
    slots = {t.user_attrs["slot"]: t.params for t in coarse_trials(storage_url)}
    assert states(coarse_trials(storage_url)) == {"COMPLETE": 8, "FAIL": 8}
    fine = stage_study(storage_url, "toy", "fine")
    assert fine.user_attrs["space"]["act"]["choices"] == ["relu"]  # narrowed from failures

    def retry(*args):
        return hpsearch("retry", "toy", "--storage", storage_url, *args, cwd=tmp_path)

    r = retry()
    assert r.returncode == 2 and "Add --from-stage fine to discard fine" in r.stderr, r.stderr
    r = retry("--from-stage", "fine")  # no terminal to ask on
    assert r.returncode == 2 and "pass --yes" in r.stderr
    r = retry("--from-stage", "coarse")
    assert r.returncode == 2 and "the first stage cannot be discarded" in r.stderr
    assert len(coarse_trials(storage_url)) == 16 and stage_study(storage_url, "toy", "fine")

    r = retry("--from-stage", "fine", "--yes")
    assert r.returncode == 0, r.stderr
    assert "stage coarse: re-queued 8 failed trial(s)" in r.stdout
    assert "stage fine: discarded (4 trials)" in r.stdout
    with pytest.raises(KeyError):
        stage_study(storage_url, "toy", "fine")

    r = launch(storage_url, study, env={"STUB_FIXED": "1"})
    assert r.returncode == 0, r.stderr
    assert_exact(storage_url)
    done = [t for t in coarse_trials(storage_url) if t.state.name == "COMPLETE"]
    assert {t.user_attrs["slot"]: t.params for t in done} == slots  # every point in place
    fine = stage_study(storage_url, "toy", "fine")
    assert fine.user_attrs["space"]["act"]["choices"] == ["tanh"]  # prepared afresh


def test_racing_re_queues_copy_each_failed_slot_once(storage_url, stub_study):
    spec = load_spec(stub_study(toy_study(objective="broken", coarse=12, max_failures=0)))
    store = st.SearchStore.open(storage_url)
    register_search(store, spec)
    run_worker(WorkerConfig(storage_url, "toy", max_trials=12))
    stage = prepare_stage(store, spec, 0, owner="test")
    results: list[list[tuple[int, int]]] = []

    def requeue():  # its own connections, as a process has
        results.append(st.SearchStore.open(storage_url).requeue_failed(stage))

    threads = [threading.Thread(target=requeue) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pairs = [p for r in results for p in r]
    assert sorted(old for old, _ in pairs) == list(range(12))
    trials = coarse_trials(storage_url)
    assert states(trials) == {"FAIL": 12, "WAITING": 12}
    assert_requeued(trials)


def test_a_stage_with_live_workers_is_not_discarded(sqlite_url, stub_study, tmp_path):
    path = stub_study(toy_study(objective="tanh_until_fixed", coarse=8, fine=2, max_failures=0))
    spec = load_spec(path)
    store = st.SearchStore.open(sqlite_url)
    register_search(store, spec)
    run_worker(WorkerConfig(sqlite_url, "toy", max_trials=8))
    fine = prepare_stage(store, spec, 1, owner="test")
    assert store.claim(fine, spec.space, worker="elsewhere:1") is not None  # a fresh heartbeat
    r = hpsearch(
        "retry", "toy", "--storage", sqlite_url, "--from-stage", "fine", "--yes", cwd=tmp_path
    )
    assert r.returncode == 2 and "1 trial(s) running under live workers" in r.stderr, r.stderr
    assert len(stage_study(sqlite_url, "toy", "fine").trials) == 2


def test_launch_retry_failed_re_runs_failures_before_running(sqlite_url, tmp_path):
    study = tmp_path / "toy.toml"
    study.write_text(toy_study(objective="tanh_until_fixed", coarse=8, fine=2, max_failures=0))
    assert launch(sqlite_url, study).returncode == 0
    failed = [t.number for t in coarse_trials(sqlite_url) if t.state.name == "FAIL"]
    assert failed, "the seed must give the coarse stage some tanh trials"
    r = launch(sqlite_url, study, "--retry-failed", env={"STUB_FIXED": "1"})
    assert r.returncode == 2 and "--from-stage fine" in r.stderr  # fine came from failures
    r = launch(
        sqlite_url,
        study,
        "--retry-failed",
        "--from-stage",
        "fine",
        "--yes",
        env={"STUB_FIXED": "1"},
    )
    assert r.returncode == 0, r.stderr
    assert f"stage coarse: re-queued {len(failed)} failed trial(s)" in r.stderr
    assert_exact(sqlite_url)
    assert len(assert_requeued(coarse_trials(sqlite_url))) == len(failed)
