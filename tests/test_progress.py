"""Progress displays, from database snapshots: the same facts on a terminal and in a log."""

from __future__ import annotations

import io

import pytest
from stubs import toy_study

from hpsearch.engine.progress import Display, StageFacts, format_duration
from hpsearch.objectives.catalog import parse_spec
from hpsearch.store import StageCounts


def spec():
    import tomllib

    return parse_spec(tomllib.loads(toy_study(coarse=20, fine=8)))


def counts(done, running=2, waiting=0, low=0.5, high=3.0, mean=2.0):
    return StageCounts(done, running, waiting, low, high, mean)


def test_facts_give_rate_eta_and_best_in_the_search_direction():
    f = StageFacts.of("coarse", 20, counts(10, running=2, mean=4.0), "minimize")
    assert (f.done, f.running, f.best) == (10, 2, 0.5)
    assert f.rate == 0.5 and f.eta_s == 20.0  # 10 left, 2 at a time, 4 s each
    assert StageFacts.of("coarse", 20, counts(10), "maximize").best == 3.0
    assert StageFacts.of("coarse", 20, counts(0, mean=None), "minimize").eta_s is None
    assert f.line() == "stage coarse: 10/20 trials, 0.5 trials/s, ETA 0:20, best 0.5, 2 running"
    assert format_duration(3725) == "1:02:05" and format_duration(None) == "?"


def test_a_log_gets_a_line_every_tenth_of_a_stage_and_at_its_end():
    out = io.StringIO()
    display = Display(spec(), stream=out, tty=False, every_s=3600)
    for done in range(21):
        display.update({"coarse": counts(done)})
    display.update({"coarse": counts(20), "fine": counts(3)})
    lines = out.getvalue().splitlines()
    assert [line.split(":")[1].split()[0] for line in lines] == [
        "0/20", "2/20", "4/20", "6/20", "8/20", "10/20", "12/20", "14/20", "16/20", "18/20",
        "20/20", "3/8",
    ]  # fmt: skip
    assert all("best 0.5" in line for line in lines)


def test_a_log_gets_a_line_every_30_seconds_when_trials_are_slow():
    clock = iter([0.0, 0.0, 10.0, 31.0, 40.0])  # the first: the display's creation
    out = io.StringIO()
    display = Display(spec(), stream=out, tty=False, clock=lambda: next(clock))
    for done in (1, 1, 1, 1):
        display.update({"coarse": counts(done)})
    assert len(out.getvalue().splitlines()) == 2  # at 0 s and at 31 s


def test_a_terminal_bar_starts_at_the_done_count_of_a_resumed_stage():
    out = io.StringIO()
    display = Display(spec(), stream=out, tty=True)
    display.update({"coarse": counts(6)})
    display.update({"coarse": counts(12)})
    display.update({"coarse": counts(20, running=0)})
    display.close()
    text = out.getvalue()
    assert "stage coarse: 6/20" in text and "stage coarse: 20/20" in text
    assert "best 0.5" in text and "running" in text


def edited():
    """The toy spec after a relaunch gave its coarse stage 30 trials instead of 20."""
    import tomllib

    return parse_spec(tomllib.loads(toy_study(coarse=30, fine=8)))


@pytest.fixture
def stored():
    """The stored spec a display reloads, which a test edits, and the time on the display's
    clock (``clock=lambda: stored["now"]``), which the test moves on."""
    return {"spec": spec(), "now": 0.0}


def test_a_log_follows_an_edit_that_extends_a_stage(stored):
    out = io.StringIO()
    display = Display(
        spec(),
        stream=out,
        tty=False,
        every_s=3600,
        reload=lambda: stored["spec"],
        reload_s=10,
        clock=lambda: stored["now"],
    )
    display.update({"coarse": counts(20, running=0)})
    stored["spec"], stored["now"] = edited(), 11.0  # a relaunch, 11 s later
    display.update({"coarse": counts(25, running=2, waiting=3)})
    display.update({"coarse": counts(30, running=0)})
    lines = [line.split(":")[1].split()[0] for line in out.getvalue().splitlines()]
    assert lines == ["20/20", "25/30", "30/30"]


def test_a_stage_is_shown_finished_only_once_the_stored_spec_agrees(stored):
    out = io.StringIO()
    display = Display(
        spec(),
        stream=out,
        tty=True,
        reload=lambda: stored["spec"],
        reload_s=10,
        clock=lambda: stored["now"],
    )
    display.update({"coarse": counts(18)})
    stored["spec"] = edited()  # no time has passed: only the check before finishing reads it
    display.update({"coarse": counts(20, running=2, waiting=8)})
    display.update({"coarse": counts(30, running=0)})
    display.close()
    text = out.getvalue()
    assert "stage coarse: 20/30" in text and "stage coarse: 30/30" in text
    assert "stage coarse: 20/20" not in text


def test_a_terminal_bar_closed_at_the_old_total_opens_again_after_an_edit(stored):
    out = io.StringIO()
    display = Display(
        spec(),
        stream=out,
        tty=True,
        reload=lambda: stored["spec"],
        reload_s=10,
        clock=lambda: stored["now"],
    )
    display.update({"coarse": counts(20, running=0)})
    stored["spec"], stored["now"] = edited(), 11.0
    display.update({"coarse": counts(25, running=2, waiting=3)})
    display.update({"coarse": counts(30, running=0)})
    display.close()
    text = out.getvalue()
    assert "stage coarse: 20/20" in text and "stage coarse: 30/30" in text


def test_a_launch_into_a_log_shows_each_stage_moving_with_its_best(tmp_path):
    """As in a Slurm log: stderr is a file, so lines, not a redrawn bar; the same for one
    worker as for two."""
    from cli_runner import hpsearch

    (tmp_path / "toy.toml").write_text(toy_study(coarse=12, fine=4))
    for workers in ("1", "2"):
        db = f"sqlite:///{tmp_path / f'w{workers}.db'}"
        r = hpsearch("launch", "toy.toml", "--storage", db, "--workers", workers, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        for stage, total in (("coarse", 12), ("fine", 4)):
            lines = [x for x in r.stderr.splitlines() if x.startswith(f"stage {stage}: ")]
            assert lines, r.stderr
            assert lines[-1].startswith(f"stage {stage}: {total}/{total} trials")
            assert "best " in lines[-1] and "best --" not in lines[-1]


def test_a_resumed_stage_shows_no_rate_until_a_trial_finishes_under_the_display():
    """After a stop on failures, the stage's stored durations are the failed attempts'
    (milliseconds each): they must not show as 150 trials/s at 0/20."""
    out = io.StringIO()
    display = Display(spec(), stream=out, tty=False, every_s=0)
    display.update({"coarse": counts(0, running=1, mean=0.006)})
    display.update({"coarse": counts(0, running=1, mean=0.006)})
    assert "-- trials/s" in out.getvalue() and "e+" not in out.getvalue()
    assert "ETA ?" in out.getvalue()


def test_rates_read_without_exponents():
    from hpsearch.engine.progress import format_rate

    assert format_rate(150.0) == "150 trials/s" and format_rate(6.0) == "6 trials/s"
    assert format_rate(0.5) == "0.5 trials/s" and format_rate(0.05) == "20 s/trial"
    assert format_rate(1 / 200) == "3:20 per trial" and format_rate(None) == "-- trials/s"


def test_a_terminal_bar_has_no_stray_comma_before_its_facts():
    out = io.StringIO()
    display = Display(spec(), stream=out, tty=True)
    display.update({"coarse": counts(6)})
    display.update({"coarse": counts(12)})
    display.close()
    text = out.getvalue()
    assert "| , " not in text and "|, " not in text
    assert "| " in text and " running" in text
