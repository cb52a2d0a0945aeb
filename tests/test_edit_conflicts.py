"""Issue 20, item 10b: two relaunches editing the same search at once. The spec is
swapped by compare-and-swap; the launch that loses it compares again with what the other
stored, and is refused (exit 2, SpecMismatch) where applying its file would undo the
other's edit, or applied on top where the two touch different fields. Deterministic: the
other launch's edit lands between this one's read and its write (before it takes the leases it writes under)."""

from __future__ import annotations

import pytest
from stored import stage_study
from stubs import toy_study

from hpsearch import store as st
from hpsearch.engine import stages
from hpsearch.engine.stages import SpecMismatch, register_search
from hpsearch.engine.worker import WorkerConfig, run_worker
from hpsearch.objectives.catalog import load_spec


def launched(url, stub_study):
    register_search(st.SearchStore.open(url), load_spec(stub_study(toy_study(coarse=4, fine=2))))
    run_worker(WorkerConfig(url, "toy"))


def racing(url, mine, theirs, monkeypatch):
    """Register ``mine`` with ``theirs`` registered by another store after ``mine`` read
    the stored spec and before it takes the stages' leases to write (once both hold their
    leases, the second simply waits for the first, as two processes do)."""
    hold = stages._hold
    done = []

    def late_hold(*args, **kwargs):
        if not done:
            done.append(True)
            register_search(st.SearchStore.open(url), load_spec(theirs))
        return hold(*args, **kwargs)

    monkeypatch.setattr(stages, "_hold", late_hold)
    return register_search(st.SearchStore.open(url), load_spec(mine))


def stored_trials(url):
    spec = stage_study(url, "toy", "coarse").user_attrs["spec"]["spec"]
    return [stage["trials"] for stage in spec["stage"]]


def test_an_edit_that_would_undo_the_other_launchs_is_refused(
    storage_url, stub_study, monkeypatch
):
    launched(storage_url, stub_study)
    theirs = stub_study(toy_study(coarse=6, fine=2), name="a.toml")
    mine = stub_study(toy_study(coarse=4, fine=3), name="b.toml")
    with pytest.raises(SpecMismatch) as refused:
        racing(storage_url, mine, theirs, monkeypatch)
    text = str(refused.value)
    assert "was edited by another launch while this one applied its edits" in text
    assert "coarse trials 4 -> 6" in text and "fine trials 2 -> 3" in text, text
    assert "merge the two edits into the study file and launch again" in text
    assert stored_trials(storage_url) == [6, 2]  # theirs, whole; nothing of mine
    history = stage_study(storage_url, "toy", "coarse").user_attrs["spec_history"]
    assert len(history) == 2


def test_edits_of_different_fields_are_both_applied(storage_url, stub_study, monkeypatch):
    launched(storage_url, stub_study)
    theirs = stub_study(toy_study(coarse=6, fine=2), name="a.toml")
    mine = stub_study(toy_study(coarse=6, fine=3), name="b.toml")  # edited after theirs
    applied = racing(storage_url, mine, theirs, monkeypatch)
    assert [line.split(" (")[0] for line in applied.changes] == ["fine trials 2 -> 3"]
    assert stored_trials(storage_url) == [6, 3]
