"""Status and report lead with the search's state, through the CLI: stopped on failures
with the cause, then (after a retry, nothing running) not running with the trials queued,
then complete; the counts add up, and failures re-queued are not shown as "failed 0"
alone."""

from __future__ import annotations

import re

import pytest
from cli_runner import hpsearch
from stubs import toy_study

REASON = "KeyError: 'learning_rate'"


def _counts_add_up(text: str) -> None:
    """``N planned: F finished (...), R running, Q queued[, L in stages not prepared]``."""
    m = re.search(
        r"trials: (\d+) planned: (\d+) finished \((.*?)\), (\d+) running, (\d+) queued"
        r"(?:, (\d+) in stages not prepared yet)?",
        text,
    )
    assert m, text
    planned, finished, kinds, running, queued, later = m.groups()
    assert sum(int(x.split()[0]) for x in kinds.split(", ")) == int(finished)
    assert int(finished) + int(running) + int(queued) + int(later or 0) == int(planned), text


@pytest.mark.slow
def test_status_and_report_lead_with_the_state_and_counts_that_add_up(tmp_path):
    study = tmp_path / "toy.toml"
    study.write_text(toy_study(objective="broken", coarse=8, fine=4))
    r = hpsearch("launch", "-q", str(study), cwd=tmp_path)
    assert r.returncode == 1, r.stderr

    for command in ("status", "report"):
        r = hpsearch(command, "toy", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[1] == f"  state: stopped on failures (stage coarse: 3 failures: {REASON})"
        assert "fix the cause, then launch again (or hpsearch retry toy)" in lines[2]
        assert "; 3 failed attempt(s) re-queued" in lines[3]
        _counts_add_up(r.stdout)

    r = hpsearch("retry", "toy", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = hpsearch("status", "toy", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "  state: not running (8 trial(s) queued; no worker is on it)" in r.stdout
    assert "launch it again (or hpsearch worker toy) to go on" in r.stdout
    coarse = next(x for x in r.stdout.splitlines() if x.startswith("  coarse"))
    assert " waiting " in coarse and " running " in coarse and "running 0" in coarse
    assert "(3 failed attempt(s) re-queued)" in coarse, coarse
    assert " running    " not in coarse.split("/")[1][:14]  # the stage is not "running"
    _counts_add_up(r.stdout)

    r = hpsearch("launch", "-q", str(study), cwd=tmp_path, env={"STUB_FIXED": "1"})
    assert r.returncode == 0, r.stderr
    for command in ("status", "report"):
        r = hpsearch(command, "toy", cwd=tmp_path)
        assert r.stdout.splitlines()[1] == "  state: complete", r.stdout
        _counts_add_up(r.stdout)
