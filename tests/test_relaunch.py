"""Relaunching an edited study file, on real SQLite and PostgreSQL: compatible edits are
applied (more trials with the first points unchanged, stages appended, a stage's own
ranges, a raised budget), stored with the spec's history and shown by the report; the
others are refused with both ways out and nothing written; launches editing at once apply
one after the other; two local workers keep exact counts while an edit lands."""

from __future__ import annotations

import datetime
import subprocess
import sys
import threading
import time

import pytest
from cli_runner import child_pythonpath
from stored import stage_study
from stubs import toy_study
from test_stop_early import assert_exact_epochs

from hpsearch import store as st
from hpsearch.engine.stages import SpecMismatch, plan_stage, register_search
from hpsearch.engine.worker import WorkerConfig, run_worker
from hpsearch.objectives.catalog import load_spec
from hpsearch.report.search import load_search
from hpsearch.report.terminal import format_summary

EXTRA = """
[[stage]]
name = "extra"
trials = 3
epochs = 1
[stage.space.lr]
low = 1e-4
high = 1e-2
"""


def register(url, stub_study, text, name="study.toml"):
    return register_search(st.SearchStore.open(url), load_spec(stub_study(text, name=name)))


def work(url, search="toy", **config):
    return run_worker(WorkerConfig(url, search, **config))


def slots(url, stage, search="toy"):
    """slot -> params of the stage's trials (a re-queued copy has its slot's params), and
    how many finished trials each slot has."""
    points, done = {}, {}
    for t in stage_study(url, search, stage).trials:
        slot = t.user_attrs["slot"]
        points[slot] = t.params
        done[slot] = done.get(slot, 0) + (t.state.name in ("COMPLETE", "FAIL"))
    return points, done


def in_order(points):
    return [points[i] for i in range(len(points))]


@pytest.mark.slow_on("postgres")
def test_more_trials_appended_to_a_finished_stage_keep_the_first_points(storage_url, stub_study):
    register(storage_url, stub_study, toy_study(coarse=8, fine=4))
    work(storage_url)
    before, _ = slots(storage_url, "coarse")

    done = register(storage_url, stub_study, toy_study(coarse=12, fine=4), "more.toml")
    assert not done.new and done.changes == ["coarse trials 8 -> 12 (4 slots appended)"]
    assert done.notes == [
        "stage fine was prepared from stage coarse's results before this edit; to narrow "
        "from all 12 once they ran, re-prepare it: hpsearch retry toy --from-stage fine"
    ]
    assert stage_study(storage_url, "toy", "coarse").user_attrs["n_points"] == 12
    assert work(storage_url).completed == 4

    after, finished = slots(storage_url, "coarse")
    assert in_order(after)[:8] == in_order(before)
    assert finished == dict.fromkeys(range(12), 1)  # each slot once: none lost, none twice
    # the sequence went on: the 12 points a search of 12 trials would have had
    assert in_order(after) == plan_stage(done.spec, 0).points
    assert slots(storage_url, "fine")[1] == dict.fromkeys(range(4), 1)


def test_an_edit_while_a_stage_runs_extends_it_and_plans_the_next_from_all(
    storage_url, stub_study, tmp_path
):
    register(storage_url, stub_study, toy_study(coarse=8, fine=4))
    work(storage_url, max_trials=3)
    done = register(storage_url, stub_study, toy_study(coarse=12, fine=6), "more.toml")
    assert done.changes == ["coarse trials 8 -> 12 (4 slots appended)", "fine trials 4 -> 6"]
    assert done.notes == []
    assert work(storage_url).completed == 9 + 6

    # the same points as the edited file launched afresh, in every stage
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    register(fresh, stub_study, toy_study(coarse=12, fine=6), "fresh.toml")
    work(fresh)
    for stage in ("coarse", "fine"):
        assert slots(storage_url, stage) == slots(fresh, stage)


@pytest.mark.slow_on("postgres")
def test_a_stage_appended_with_its_own_range_runs_and_the_report_says_which_edit(
    storage_url, stub_study
):
    register(storage_url, stub_study, toy_study(coarse=8, fine=4))
    work(storage_url)
    done = register(storage_url, stub_study, toy_study(coarse=8, fine=4) + EXTRA, "extra.toml")
    assert done.changes == ["stage extra appended: 3 trials x 1 epoch(s), random"]
    assert work(storage_url).completed == 3

    extra = stage_study(storage_url, "toy", "extra").user_attrs
    lr = {"low": 1e-4, "high": 1e-2, "log": True}
    assert extra["space"]["lr"] == lr and extra["region"]["space"]["lr"] == lr
    assert extra["space"]["wd"] != {"low": 1e-6, "high": 1e-2, "log": True}  # narrowed
    points, finished = slots(storage_url, "extra")
    assert finished == dict.fromkeys(range(3), 1)
    assert all(1e-4 <= p["lr"] <= 1e-2 for p in points.values())

    first = stage_study(storage_url, "toy", "coarse").user_attrs
    history = first["spec_history"]
    assert [h["changes"] for h in history] == [[], done.changes]
    assert history[-1]["spec"] == first["spec"]["spec"] == done.spec.to_dict()
    assert history[0]["spec"] == load_spec(stub_study(toy_study(coarse=8, fine=4))).to_dict()
    assert all(datetime.datetime.fromisoformat(h["at"]).tzinfo for h in history)

    text = format_summary(load_search(st.SearchStore.open(storage_url, readonly=True), "toy"))
    assert "  launched 20" in text
    assert ": stage extra appended: 3 trials x 1 epoch(s), random" in text
    assert "  stage extra came from the edit of 20" in text
    assert "stage extra: 3/3 trials" in text


@pytest.mark.parametrize(
    ("edited", "diff"),
    [
        (toy_study(coarse=8, fine=4, seed=1), "seed: stored 0, file 1"),
        (toy_study(coarse=6, fine=4), "stage[0].trials: stored 8, file 6 (stage coarse has 8"),
        (toy_study(coarse=8, fine=4).replace("epochs = 1", "epochs = 2"),
         "stage[0].epochs: stored 1, file 2 (stage coarse is prepared with it"),
        (toy_study(coarse=8, fine=4).replace("low = 1e-5", "low = 1e-7"),
         "space.lr: stored {'low': 1e-05"),
    ],
)  # fmt: skip
@pytest.mark.slow_on("postgres")
def test_incompatible_edits_are_refused_with_both_ways_out_and_nothing_written(
    storage_url, stub_study, edited, diff
):
    register(storage_url, stub_study, toy_study(coarse=8, fine=4))
    work(storage_url, max_trials=2)
    stored = stage_study(storage_url, "toy", "coarse").user_attrs
    with pytest.raises(SpecMismatch) as refused:
        register(storage_url, stub_study, edited, "edited.toml")
    text = str(refused.value)
    assert diff in text
    assert 'name = "toy-2"' in text and "hpsearch delete toy" in text
    assert stage_study(storage_url, "toy", "coarse").user_attrs == stored  # nothing written
    assert "spec_history" not in stored


def test_a_grid_stage_is_not_extended(sqlite_url, stub_study):
    register(sqlite_url, stub_study, toy_study(coarse=16, fine=2, sampler="grid"))
    work(sqlite_url, max_trials=1)
    with pytest.raises(SpecMismatch, match="a grid of exactly 16 points, which cannot grow"):
        register(sqlite_url, stub_study, toy_study(coarse=24, fine=2, sampler="grid"), "g.toml")


def test_launches_editing_at_once_never_undo_one_another(storage_url, stub_study):
    register(storage_url, stub_study, toy_study(coarse=4, fine=2))
    work(storage_url)
    files = [stub_study(toy_study(coarse=4 + k, fine=2), name=f"e{k}.toml") for k in range(1, 7)]
    outcomes: list[object] = []

    def relaunch(path):
        try:
            outcomes.append(register_search(st.SearchStore.open(storage_url), load_spec(path)))
        except SpecMismatch as exc:  # another launch edited coarse first (item 10b)
            outcomes.append(exc)

    threads = [threading.Thread(target=relaunch, args=(path,)) for path in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # Each launch either applied its file whole or was refused: the ones that lost the
    # race to one that had read the same spec, as their file would undo its edit; the
    # ones that read a larger coarse, as it would drop queued trials.
    applied = [o for o in outcomes if not isinstance(o, SpecMismatch)]
    assert len(outcomes) == 6 and applied
    history = stage_study(storage_url, "toy", "coarse").user_attrs["spec_history"]
    trials = [h["spec"]["stage"][0]["trials"] for h in history]
    assert len(history) == 1 + len(applied) and trials == sorted(set(trials))
    assert sorted(trials[1:]) == sorted(o.spec.stages[0].trials for o in applied)
    last = trials[-1]
    assert slots(storage_url, "coarse")[0].keys() == set(range(last))  # each slot once
    assert len(stage_study(storage_url, "toy", "coarse").trials) == last


def planned(budget):
    """The toy study with a budget instead of its [[stage]] tables."""
    head, space = toy_study().split("[[stage]]")[0].split("[space.lr]")
    return f"{head}budget = {budget}\nmax_epochs = 4\n[space.lr]{space}"


def test_a_raised_budget_appends_runs_to_the_plan_that_ran(sqlite_url, stub_study):
    first = register(sqlite_url, stub_study, planned(160))  # big enough for coarse-to-fine
    assert [(s.name, s.trials, s.epochs) for s in first.spec.stages] == [
        ("coarse", 13, 4),
        ("fine", 27, 4),
    ]
    work(sqlite_url)
    done = register(sqlite_url, stub_study, planned(172), "more.toml")
    assert done.changes == ["budget 160 -> 172", "fine trials 27 -> 30 (3 slots appended)"]
    more = work(sqlite_url)  # 3 runs' worth of epochs: early stopping makes them more runs
    assert more.completed + more.stopped_early >= 3
    assert_exact_epochs(sqlite_url)  # each slot once, every stage's epochs to within a run
    again = register(sqlite_url, stub_study, planned(172), "again.toml")
    assert again.changes == [] and again.spec.stages == done.spec.stages


def test_max_failures_is_applied_once_the_search_ran(sqlite_url, stub_study):
    register(sqlite_url, stub_study, toy_study(coarse=4, fine=2))
    work(sqlite_url)
    done = register(sqlite_url, stub_study, toy_study(coarse=4, fine=2, max_failures=5), "m.toml")
    assert done.changes == ["max_failures 3 -> 5"] and done.spec.max_failures == 5
    stored = st.SearchStore.open(sqlite_url).find_spec("toy")
    assert stored is not None and stored.max_failures == 5


@pytest.mark.slow
def test_two_local_workers_keep_exact_counts_while_an_edit_lands(storage_url, stub_study):
    """``launch --workers 2`` runs; a second ``launch --workers 2`` of the edited file gives
    the running stage more trials, the next stage more trials and appends a stage."""
    sleepy = toy_study(objective="sleepy", coarse=16, fine=4)
    path = stub_study(sleepy)
    edited = stub_study(
        toy_study(objective="sleepy", coarse=20, fine=6) + EXTRA.replace("3", "2"), "e.toml"
    )
    env = {
        "PYTHONPATH": child_pythonpath(),
        "HPSEARCH_STORAGE": storage_url,
        "STUB_SLEEP": "0.4",
        "PATH": "/usr/bin:/bin",
    }

    def launch(file):
        command = [sys.executable, "-m", "hpsearch.cli", "launch", str(file), "--workers", "2"]
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    first = launch(path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait for the first results of the coarse stage
        try:
            trials = stage_study(storage_url, "toy", "coarse").trials
        except KeyError:
            trials = []
        if sum(t.state.name == "COMPLETE" for t in trials) >= 2:
            break
        time.sleep(0.2)
    second = launch(edited)
    out2, err2 = (s.decode() for s in second.communicate(timeout=180))
    out1, err1 = (s.decode() for s in first.communicate(timeout=180))
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    assert "edited search toy: coarse trials 16 -> 20 (4 slots appended)" in err2
    # the first launch's progress follows the edit (its fine stage ran only after it landed)
    fine = [line for line in err1.splitlines() if line.startswith("stage fine: ")]
    assert fine and fine[-1].startswith("stage fine: 6/6 trials"), err1
    assert not [line for line in fine if line.startswith("stage fine: 4/4")], err1

    for stage, n in (("coarse", 20), ("fine", 6), ("extra", 2)):
        assert slots(storage_url, stage)[1] == dict.fromkeys(range(n), 1), stage
    states = {t.state.name for s in ("coarse", "fine", "extra")
              for t in stage_study(storage_url, "toy", s).trials}  # fmt: skip
    assert states == {"COMPLETE"}
    spec = load_spec(edited)
    assert in_order(slots(storage_url, "coarse")[0]) == plan_stage(spec, 0).points
