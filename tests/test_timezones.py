"""Heartbeats and staleness never depend on a session's time zone (PostgreSQL): written
and compared with the database clock in UTC, so a worker whose session runs in UTC-10
does not look stale to one in UTC+9, and its healthy trial is not re-queued."""

from __future__ import annotations

import optuna
import sqlalchemy as sa

from hpsearch.store.sql.claims import claim_slot, count_live, record_heartbeat, stale_trials


def session(url: str, zone: str) -> sa.Engine:
    return sa.create_engine(url, connect_args={"options": f"-c timezone={zone}"})


def test_a_worker_in_another_time_zone_is_not_stale(postgres_url):
    study = optuna.create_study(storage=postgres_url, study_name="tz/coarse")
    study.enqueue_trial({"x": 1.0})
    honolulu, tokyo = (
        session(postgres_url, "Pacific/Honolulu"),
        session(postgres_url, "Asia/Tokyo"),
    )
    try:
        with honolulu.connect() as conn:  # the session really is UTC-10
            assert conn.execute(sa.text("SHOW timezone")).scalar() == "Pacific/Honolulu"
        claim = claim_slot(honolulu, study._study_id, worker="hnl:1")
        assert claim is not None
        for judge in (tokyo, honolulu):  # the claim's own beat, read from both zones
            assert stale_trials(judge, study._study_id, 30) == []
            assert count_live(judge, study._study_id, 30) == 1
        record_heartbeat(honolulu, claim.trial_id)
        record_heartbeat(tokyo, claim.trial_id)  # a beat from any zone means the same
        for judge in (tokyo, honolulu):
            assert stale_trials(judge, study._study_id, 30) == []
    finally:
        honolulu.dispose()
        tokyo.dispose()


def test_workers_in_two_time_zones_requeue_nothing(postgres_url, tmp_path):
    """Real workers, one launched with ``PGTZ=Pacific/Honolulu`` and one joining with
    ``PGTZ=Asia/Tokyo``, each recovering the other's trials every few seconds (a grace
    period of 4 s): no healthy trial is taken for lost."""
    import os
    import subprocess
    import sys
    import time

    from cli_runner import TESTS
    from stored import stage_study
    from stubs import toy_study

    study = tmp_path / "study.toml"
    study.write_text(toy_study(objective="sleepy", coarse=6, fine=2))
    env = {k: v for k, v in os.environ.items() if k != "HPSEARCH_STORAGE"}
    env.update(PYTHONPATH=os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]))
    env.update(STUB_SLEEP="2")
    cli = [sys.executable, "-m", "hpsearch.cli"]
    where = ["--storage", postgres_url, "--grace-period", "4"]
    first = subprocess.Popen(
        [*cli, "launch", str(study), *where],
        env={**env, "PGTZ": "Pacific/Honolulu"},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _running(postgres_url):
            assert first.poll() is None and time.monotonic() < deadline, "no trial started"
            time.sleep(0.2)
        second = subprocess.run(
            [*cli, "worker", "toy", *where, "--no-progress"],
            env={**env, "PGTZ": "Asia/Tokyo"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        _, err = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 0, err
    assert second.returncode == 0, second.stderr
    lost = [
        t.number
        for stage in ("coarse", "fine")
        for t in stage_study(postgres_url, "toy", stage).get_trials()
        if "worker lost" in str(t.user_attrs.get("fail_reason", ""))
    ]
    assert lost == []


def _running(url: str) -> bool:
    from stored import stage_study

    try:
        trials = stage_study(url, "toy", "coarse").get_trials(deepcopy=False)
    except KeyError:
        return False
    return any(t.state.name == "RUNNING" for t in trials)
