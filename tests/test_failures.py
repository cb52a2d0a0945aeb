"""Failures as a practitioner reads them: grouped by exception type and the user's frame,
counted for real, the last traceback at hand, a wrong signature refused at launch."""

from __future__ import annotations

import pytest
import stubs
from cli_runner import hpsearch
from stubs import toy_study

from hpsearch.core.failures import describe, group_failures
from hpsearch.core.records import TrialRecord
from hpsearch.engine.worker import _failure


def failed(number: int, reason: str, where: str = "", kind: str | None = None) -> TrialRecord:
    attrs = {"fail_reason": reason, "fail_where": where}
    if kind is not None:
        attrs["fail_type"] = kind
    return TrialRecord(number, "coarse", "FAIL", {}, attrs=attrs)


HELPER = "/home/me/train.py:12 in check: raise ValueError(f'lr too large: {lr}')"


def test_messages_that_differ_in_a_value_are_one_group_with_its_real_count():
    records = [
        failed(n, f"ValueError: lr too large for this model: {0.1 * n}", HELPER) for n in range(6)
    ]
    records.append(failed(9, "KeyError: 'width'", "/home/me/train.py:30 in fit: params['width']"))
    groups = group_failures(records)
    assert [(g.kind, g.count) for g in groups] == [("ValueError", 6), ("KeyError", 1)]
    assert groups[0].where == "/home/me/train.py:12 in check"  # the line of code left out
    assert groups[0].example == "ValueError: lr too large for this model: 0.0"  # the first's
    assert "6 x ValueError at /home/me/train.py:12 in check (trials 0, 1, 2, 3, 4, 5)" in (
        groups[0].text()
    )
    stop = describe("3 trials failed", records)
    assert (stop.count, stop.failures, stop.reason) == (
        6,
        7,
        "ValueError: lr too large for this model: 0.0",
    )


def test_the_same_type_raised_at_two_lines_is_two_groups_and_untyped_reasons_group_by_text():
    records = [
        failed(0, "ValueError: a", "/x.py:1 in f: raise", kind="ValueError"),
        failed(1, "ValueError: b", "/x.py:2 in f: raise", kind="ValueError"),
        failed(2, "objective returned nan; return a finite number (report divergence)"),
        failed(3, "objective returned 1.5e+300; return a finite number"),
        failed(4, "objective returned 2.5e+300; return a finite number"),
    ]
    groups = group_failures(records)
    assert [g.count for g in groups] == [2, 1, 1, 1]
    assert groups[0].numbers == (3, 4)


def test_a_trial_failure_points_at_the_users_frame_and_leaves_hpsearchs_out():
    with pytest.raises(ValueError) as raised:
        stubs.lr_too_large({"lr": 0.5}, 1, None)
    attrs = _failure(raised.value)
    assert attrs["fail_type"] == "ValueError"
    assert "stubs.py:" in attrs["fail_where"] and "in _check_lr" in attrs["fail_where"]
    assert attrs["fail_traceback"].startswith("ValueError raised at ")

    with pytest.raises(ValueError) as raised:  # json's own frames lie below the user's
        stubs.lr_too_large({"lr": 1e-5}, 1, None)
    attrs = _failure(raised.value)
    assert attrs["fail_type"] == "json.decoder.JSONDecodeError"
    assert "in lr_too_large: json.loads" in attrs["fail_where"]


def test_launch_counts_failures_groups_them_and_status_shows_the_last_traceback(tmp_path):
    (tmp_path / "lr.toml").write_text(toy_study(objective="lr_too_large", coarse=20, fine=4))
    r = hpsearch("launch", "lr.toml", "--max-failures", "0", "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr  # finished: a warning and the count, not an exit 1
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith("best loss ") and " of 24 trials failed" in last, last
    assert "warning: " in r.stderr and "x ValueError at " in r.stderr, r.stderr
    assert "most often (1x)" not in r.stdout + r.stderr

    r = hpsearch("status", "toy", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "last failure, trial " in r.stdout and "Traceback" in r.stdout
    frames = [x for x in r.stdout.splitlines() if x.strip().startswith('File "')]
    assert frames and "stubs.py" in frames[0], r.stdout  # the user's frame first
    assert "worker.py" not in r.stdout

    r = hpsearch("report", "toy", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "trials in stage coarse failed:" in r.stdout and "x ValueError at " in r.stdout
    assert "last failure, trial " in r.stdout


def test_a_wrong_objective_signature_is_refused_at_launch_before_anything_is_written(tmp_path):
    (tmp_path / "two.toml").write_text(toy_study(objective="two_args"))
    for args in (("launch", "two.toml"), ("launch", "two.toml", "--dry-run")):
        r = hpsearch(*args, cwd=tmp_path)
        assert r.returncode == 2, r.stderr
        assert "stubs:two_args is two_args(params, epochs)" in r.stderr
        assert "stubs.py:" in r.stderr and "fn(params, epochs, report)" in r.stderr
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "hpsearch.db").exists()


def test_retry_names_the_study_file_to_launch_again(tmp_path):
    (tmp_path / "toy.toml").write_text(toy_study(objective="crash_on_tanh", coarse=8, fine=2))
    r = hpsearch("launch", "toy.toml", "--max-failures", "0", "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = hpsearch("retry", "toy", "--from-stage", "fine", "--yes", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "launch again to run them: hpsearch launch toy.toml (or hpsearch worker toy)" in (
        r.stderr
    )
    assert "hpsearch launch FILE" not in r.stderr


def test_the_api_refuses_a_function_with_the_wrong_signature(sqlite_url):
    import hpsearch
    from hpsearch.core.spec import SpecError

    with pytest.raises(
        SpecError, match=r"two_args\(params, epochs\).*fn\(params, epochs, report\)"
    ):
        hpsearch.launch(toy_study(), storage=sqlite_url, objective=stubs.two_args)
