"""Stage notes and region figures: what a finished stage study carries for reviewers."""

from __future__ import annotations

import json

import optuna
import pytest
from optuna_dashboard import get_note, save_note
from optuna_dashboard._custom_plot_data import get_plotly_graph_objects
from stored import stage_study, study_system_attrs
from stubs import toy_study

from hpsearch import store as st
from hpsearch.notes import (
    FIGURE_ID,
    _problems,
    draw_region_figure,
    param_importances,
    region_figure_data,
    stage_note,
    write_stage_note,
)
from hpsearch.records import TrialRecord, rank
from hpsearch.regions import describe_range
from hpsearch.report.search import load_search
from hpsearch.spec import load_spec
from hpsearch.stages import register_search
from hpsearch.worker import WorkerConfig, run_worker


def finished_search(url, stub_study, **toy):
    """Run a toy search to the end in this process; returns its spec."""
    spec = load_spec(stub_study(toy_study(**toy)))
    register_search(st.SearchStore.open(url), spec)
    run_worker(WorkerConfig(url, spec.name))
    return spec


def test_worker_writes_each_finished_stage_the_reports_facts(storage_url, stub_study):
    # max_failures = 0: half its trials fail, which would stop the search (hpsearch.failfast)
    spec = finished_search(
        storage_url, stub_study, objective="crash_on_tanh", coarse=16, fine=6, max_failures=0
    )
    view = load_search(st.SearchStore.open(storage_url), "toy")
    for v in view.stages:
        study = stage_study(storage_url, "toy", v.stage.name)
        note = get_note(study)
        assert note.startswith(f"## Stage `{v.stage.name}` of search `toy`")
        best = rank(v.records, "minimize")[0]
        assert f"| {best.number} | {best.value:.4g} |" in note
        for p in v.handed_on.params:
            assert f"| {p.name} | {describe_range(p.after)} | {describe_range(p.before)} |" in note
        # Deterministic from the stored results: any worker would have written the same.
        assert note == stage_note(spec, v, param_importances(v, "minimize"))
        figure = json.loads(
            get_plotly_graph_objects(study_system_attrs(storage_url, study.study_name))[FIGURE_ID]
        )
        assert figure["data"][0]["name"] == "region handed on"
    coarse, fine = (get_note(stage_study(storage_url, "toy", s.name)) for s in spec.stages)
    failed = [r.number for r in view.stages[0].records if r.state == "FAIL"]
    assert failed, "the seed must give the coarse stage some tanh trials"
    assert f"{len(failed)} failed (trials {', '.join(map(str, failed[:12]))}" in coarse
    assert "RuntimeError: tanh is not supported by this stub" in coarse
    assert "handed on to stage `fine`" in coarse and "Searched the region" in fine
    assert "### Important parameters" in coarse


def test_a_note_is_written_once_and_a_persons_note_is_kept(sqlite_url, stub_study):
    spec = finished_search(sqlite_url, stub_study, coarse=8, fine=3)
    store = st.SearchStore.open(sqlite_url)
    study = stage_study(sqlite_url, "toy", "coarse")

    def version():
        return study_system_attrs(sqlite_url, "toy/coarse")["dashboard:note_ver"]

    before = version()
    # a second worker finds it written
    assert write_stage_note(store, spec, 0, owner="late") is False
    assert version() == before
    save_note(study, "reviewed: lr matters, wd does not")
    assert write_stage_note(store, spec, 0, owner="late") is False
    assert get_note(study) == "reviewed: lr matters, wd does not"


def test_an_unfinished_stage_gets_no_note(sqlite_url, stub_study):
    spec = load_spec(stub_study(toy_study(coarse=6, fine=3)))
    register_search(st.SearchStore.open(sqlite_url), spec)
    run_worker(WorkerConfig(sqlite_url, spec.name, max_trials=4))
    store = st.SearchStore.open(sqlite_url)
    assert write_stage_note(store, spec, 0, owner="test") is False
    assert get_note(stage_study(sqlite_url, "toy", "coarse")) == ""


def test_a_one_trial_stage_gets_a_note_without_importance(sqlite_url, stub_study):
    finished_search(sqlite_url, stub_study, coarse=3, fine=1)
    note = get_note(stage_study(sqlite_url, "toy", "fine"))
    assert "### Best 1 trials" in note and "Important parameters" not in note
    view = load_search(st.SearchStore.open(sqlite_url), "toy")
    assert param_importances(view.stages[1], "minimize") == {}


def test_region_figure_boxes_the_two_most_important_numeric_params(sqlite_url, stub_study):
    finished_search(sqlite_url, stub_study, objective="crash_on_tanh", coarse=12, fine=3)
    view = load_search(st.SearchStore.open(sqlite_url), "toy")
    v = view.stages[0]
    region = v.handed_on

    d = region_figure_data(view.spec, v, {"act": 0.9, "wd": 0.08, "lr": 0.02})
    assert (d.x.name, d.y.name) == ("wd", "lr")  # the categorical cannot be boxed
    assert d.box_x == (region.space["wd"].low, region.space["wd"].high)
    assert d.box_y == (region.space["lr"].low, region.space["lr"].high)
    assert d.kept == frozenset(region.kept)
    assert {r.number for r in d.bad} == {r.number for r in v.records if r.state == "FAIL"}
    unknown = region_figure_data(view.spec, v, {})  # no importance: the space's order
    assert (unknown.x.name, unknown.y.name) == ("lr", "wd")

    fig = draw_region_figure(d)
    box, *points = fig.data
    lo, hi = d.box_x
    assert list(box.x) == [lo, hi, hi, lo, lo]
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    top = next(t for t in points if t.name == "top trials")
    assert len(top.x) == len([n for n in region.kept if any(r.number == n for r in d.ok)])


@pytest.mark.parametrize(
    "records, expected",
    [
        ([TrialRecord(0, "s", "COMPLETE", {}, 1.0)], []),
        (
            [
                TrialRecord(1, "s", "FAIL", {}, attrs={"fail_reason": "OOM"}),
                TrialRecord(2, "s", "FAIL", {}, attrs={"fail_reason": "OOM"}),
                TrialRecord(3, "s", "FAIL", {}, attrs={"fail_reason": "OOM"}, superseded=True),
            ],
            ["- 2 failed (trials 1, 2): `OOM`"],
        ),
        (
            [
                TrialRecord(
                    4,
                    "s",
                    "COMPLETE",
                    {},
                    2.3,
                    attrs={"diverged": True, "diverged_reason": "train loss nan at epoch 1"},
                ),
                TrialRecord(5, "s", "FAIL", {}),
            ],
            [
                "- 1 diverged (trial 4): `train loss nan at epoch 1`",
                "- 1 failed (trial 5): `no reason recorded`",
            ],
        ),
    ],
)
def test_failures_are_grouped_by_the_recorded_reason(records, expected):
    assert _problems(records) == expected


def test_a_failing_note_never_stops_the_worker(sqlite_url, stub_study, monkeypatch, caplog):
    import hpsearch.notes

    def broken(*args, **kwargs):
        raise optuna.exceptions.StorageInternalError("disk full")

    monkeypatch.setattr(hpsearch.notes, "stage_note", broken)
    spec = load_spec(stub_study(toy_study(coarse=4, fine=2)))
    register_search(st.SearchStore.open(sqlite_url), spec)
    stats = run_worker(WorkerConfig(sqlite_url, spec.name))
    assert stats.completed == 6
    assert "could not write the dashboard note" in caplog.text


def test_workers_finishing_together_leave_one_correct_note(storage_url, stub_study):
    import threading

    from hpsearch.stages import prepare_stage

    spec = load_spec(stub_study(toy_study(coarse=10, fine=4)))
    storage = st.SearchStore.open(storage_url)
    register_search(storage, spec)
    # Prepared before the workers start: on a fresh PostgreSQL database, workers that take
    # their first lease at the same instant race on creating the lease table (reported).
    prepare_stage(storage, spec, 0, owner="test")
    errors: list[BaseException] = []

    def work() -> None:
        try:
            run_worker(WorkerConfig(storage_url, spec.name))
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert errors == []
    view = load_search(storage, "toy")
    for v in view.stages:
        study = stage_study(storage_url, "toy", v.stage.name)
        assert get_note(study) == stage_note(spec, v, param_importances(v, "minimize"))
