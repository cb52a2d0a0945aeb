"""Issue 20, item 7: ``trial_timeout``. A hanging objective is ended and its trial failed
"timed out after N s"; one that ignores the interruption has its worker process ended
after the grace (a CLI worker execs itself again); either way the search goes on."""

from __future__ import annotations

import pytest
from cli_runner import hpsearch
from stubs import toy_study
from test_workers import trials_of


def hanging_study(stub_study, stage_timeout: str = ""):
    body = toy_study(objective="hangs", coarse=6, fine=2).replace(
        "seed = 0", "seed = 0\nmax_failures = 0\ntrial_timeout = 1"
    )
    if stage_timeout:
        body = body.replace('name = "fine"', f'name = "fine"\ntrial_timeout = {stage_timeout}')
    return stub_study(body)


def test_trial_timeout_is_validated_and_shown_in_the_dry_run(stub_study, tmp_path):
    done = hpsearch("launch", str(hanging_study(stub_study, "0.5")), "--dry-run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "each trial ended and failed after 1 s" in done.stdout
    assert "each trial ended and failed after 0.5 s" in done.stdout
    bad = stub_study(toy_study().replace("seed = 0", "seed = 0\ntrial_timeout = -3"), "bad.toml")
    done = hpsearch("launch", str(bad), "--dry-run", cwd=tmp_path)
    assert done.returncode == 2 and "trial_timeout" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow  # real launches whose trials hang until their timeout
@pytest.mark.parametrize("how", ["sleep", "stubborn"])
def test_a_hanging_trial_is_ended_failed_as_timed_out_and_the_search_goes_on(
    sqlite_url, stub_study, tmp_path, how
):
    path = hanging_study(stub_study)
    done = hpsearch(
        "launch", str(path), "--storage", sqlite_url, "--no-progress", "--grace-period", "2",
        cwd=tmp_path, env={"STUB_HANG": how},
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "Traceback" not in out, out[-4000:]
    for stage in ("coarse", "fine"):
        trials = trials_of(sqlite_url, f"toy/{stage}")
        assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
        slots = [t.user_attrs["slot"] for t in trials if t.state.name in ("COMPLETE", "FAIL")]
        assert sorted(slots) == list(range(6 if stage == "coarse" else 2)), (stage, slots)
        for t in trials:
            if t.params.get("act") == "tanh":
                assert t.state.name == "FAIL"
                assert t.user_attrs["fail_reason"].startswith("timed out after 1 s"), t.user_attrs
                if how == "stubborn":
                    assert "worker process was ended" in t.user_attrs["fail_reason"]
            else:
                assert t.state.name == "COMPLETE", t.user_attrs
    report = hpsearch("report", "toy", "--storage", sqlite_url, cwd=tmp_path)
    assert "trials were ended and failed after 1 s" in report.stdout, report.stdout
