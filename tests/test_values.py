"""Issue 20, items 2 and 9: values no float holds, and the widest ranges a study may have.

Real worker processes (``hpsearch launch``): an objective that returns, reports or logs
``10**400`` fails that trial with the reason and the search goes on (the worker died of
an OverflowError before); extreme ranges are refused at validation with the field and the
limit (exit 2, no traceback), and the widest accepted ones run two stages end to end.
"""

from __future__ import annotations

import pytest
from cli_runner import hpsearch
from stubs import toy_study
from test_workers import trials_of


def odd_study(stub_study, how: str):
    body = toy_study(objective="odd_values", coarse=8, fine=4).replace(
        "seed = 0", "seed = 0\nmax_failures = 0"
    )
    return stub_study(body)


@pytest.mark.slow  # a launch each (about 20 s on 2 shared cores)
@pytest.mark.parametrize("how", ["return", "report", "log"])
def test_values_no_float_holds_fail_their_trial_and_the_search_goes_on(
    sqlite_url, stub_study, tmp_path, how
):
    path = odd_study(stub_study, how)
    done = hpsearch(
        "launch", str(path), "--storage", sqlite_url, "--no-progress", "--grace-period", "2",
        cwd=tmp_path, env={"STUB_ODD": how},
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    # no crash of hpsearch's own (stderr); the report on stdout may show the user's failure
    assert "Traceback" not in done.stderr and "OverflowError" not in out, out[-3000:]
    trials = trials_of(sqlite_url, "toy/coarse")
    assert len(trials) == 8 and not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    failed = [t for t in trials if t.state.name == "FAIL"]
    tanh = [t for t in trials if t.params["act"] == "tanh"]
    if how == "log":
        assert not failed, [t.user_attrs.get("fail_reason") for t in failed]
        attrs = trials[0].user_attrs
        assert attrs["huge"].startswith("1000") and attrs["nan"] == "nan"
        assert attrs["thing"].startswith("<object") and attrs["fine"] == [1, 2.5, "x"]
        return
    assert tanh and sorted(t.number for t in failed) == sorted(t.number for t in tanh)
    reason = failed[0].user_attrs["fail_reason"]
    assert "no float holds" in reason, reason


@pytest.mark.parametrize(
    ("table", "field", "limit"),
    [
        ("low = -1e308\nhigh = 1e308", "space.lr.low", "1e+100"),
        ("low = 1e-300\nhigh = 1e300", "space.lr.high", "1e+100"),
        ("low = 1e-300\nhigh = 1e300\nlog = true", "space.lr.low", "1e-100 .. 1e+100"),
        ("low = 0\nhigh = 1" + "0" * 400, "space.lr.high", "no float holds it"),
        ("low = 0\nhigh = 9007199254740993", "space.lr.high", "2**53"),
    ],
)
def test_extreme_ranges_are_refused_at_validation_naming_the_field_and_the_limit(
    stub_study, tmp_path, table, field, limit
):
    body = toy_study().replace("low = 1e-5\nhigh = 1.0\nlog = true", table)
    path = stub_study(body)
    for args in (("launch", str(path), "--dry-run"), ("launch", str(path))):
        done = hpsearch(*args, "--storage", f"sqlite:///{tmp_path}/x.db", cwd=tmp_path)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        assert field in done.stderr and limit in done.stderr, done.stderr


def test_a_fixed_integer_past_64_bits_is_refused(stub_study, tmp_path):
    body = toy_study().replace("seed = 0", "seed = 0\n[fixed]\nbig = 1" + "0" * 400)
    done = hpsearch("launch", str(stub_study(body)), "--dry-run", cwd=tmp_path)
    assert done.returncode == 2 and "fixed.big" in done.stderr and "64-bit" in done.stderr


EXTREME = """
name = "extreme"
objective = "stubs:extreme"
metric = "loss"
[space.tiny]
low = 1e-100
high = 1e100
log = true
[space.wide]
low = -1e100
high = 1e100
[space.count]
low = -9007199254740992
high = 9007199254740992
[[stage]]
name = "coarse"
trials = 12
epochs = 1
sampler = "{sampler}"
[[stage]]
name = "fine"
trials = 6
epochs = 1
keep = 0.5
margin = 1.0
"""


@pytest.mark.slow  # a launch each
@pytest.mark.parametrize("sampler", ["random", "sobol"])
def test_the_widest_accepted_ranges_run_end_to_end(sqlite_url, stub_study, tmp_path, sampler):
    path = stub_study(EXTREME.format(sampler=sampler))
    done = hpsearch("launch", str(path), "--storage", sqlite_url, "--no-progress", cwd=tmp_path)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert "Traceback" not in out and "warning: " not in out.lower().split("best ")[0], out
    for stage in ("coarse", "fine"):
        trials = trials_of(sqlite_url, f"extreme/{stage}")
        assert trials and all(t.state.name == "COMPLETE" for t in trials), [
            t.user_attrs.get("fail_reason") for t in trials
        ]
    report = hpsearch("report", "extreme", "--storage", sqlite_url, cwd=tmp_path)
    assert report.returncode == 0 and "Traceback" not in report.stderr, report.stderr
