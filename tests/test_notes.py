"""Stage notes and region figures: what a finished stage study carries for reviewers."""

from __future__ import annotations

import dataclasses
import json
import re

import optuna
import pytest
from cli_runner import hpsearch as hpsearch_cli
from optuna_dashboard import get_note, save_note
from optuna_dashboard._custom_plot_data import get_plotly_graph_objects
from stored import stage_study, study_system_attrs
from stubs import toy_study

import hpsearch
from hpsearch import store as st
from hpsearch.core.evidence import thin_region
from hpsearch.core.records import TrialRecord, rank
from hpsearch.engine.stages import register_search
from hpsearch.engine.worker import WorkerConfig, run_worker
from hpsearch.objectives.catalog import load_spec
from hpsearch.report.analysis import analyze, analyze_stage
from hpsearch.report.figures import draw_region_figure
from hpsearch.report.importance import Importance
from hpsearch.report.note import (
    FIGURE_ID,
    _problems,
    on_worker_event,
    stage_note,
    write_stage_note,
)
from hpsearch.report.plotdata import region_figure_data
from hpsearch.report.search import load_search


def finished_search(url, stub_study, **toy):
    """Run a toy search to the end in this process, writing notes as ``api.run`` does;
    returns its spec."""
    spec = load_spec(stub_study(toy_study(**toy)))
    register_search(st.SearchStore.open(url), spec)
    run_worker(WorkerConfig(url, spec.name), on_event=on_worker_event)
    return spec


def expected_note(spec, v):
    """The note of stage view ``v`` as ``hpsearch report`` analyses it."""
    return stage_note(spec, analyze_stage(spec, v))


def test_worker_writes_each_finished_stage_the_reports_facts(storage_url, stub_study):
    # max_failures = 0: half its trials fail, which would stop the search (hpsearch.engine.failfast)
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
        last = v.index == len(spec.stages) - 1
        if last:  # the last stage ends with the search's promising region and its confidence
            assert "### Promising region (the last stage: where to look next)" in note
            assert "confidence" in note or "the evidence is thin" in note
        elif thin_region(len(v.handed_on.kept)):  # a handful of runs: no table, said so
            assert "the evidence is thin: the region is spanned by" in note
        else:
            for p in v.handed_on.params:
                row = f"| {p.name} | {p.after.describe_range()} | {p.before.describe_range()} |"
                assert row in note
        # Deterministic from the stored results: any worker would have written the same.
        assert note == expected_note(spec, v)
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


def test_a_stage_extended_after_its_note_gets_it_drawn_again(sqlite_url, stub_study):
    finished_search(sqlite_url, stub_study, coarse=8, fine=3)
    before = get_note(stage_study(sqlite_url, "toy", "coarse"))
    fine_before = study_system_attrs(sqlite_url, "toy/fine")["dashboard:note_ver"]
    spec = finished_search(sqlite_url, stub_study, coarse=12, fine=3)  # the relaunch's edit
    view = load_search(st.SearchStore.open(sqlite_url), "toy")
    after = get_note(stage_study(sqlite_url, "toy", "coarse"))
    assert after != before and len(view.stages[0].finished) == 12
    assert after == expected_note(spec, view.stages[0])
    # the fine stage got no trial: its note stands, not drawn again
    assert study_system_attrs(sqlite_url, "toy/fine")["dashboard:note_ver"] == fine_before


def test_a_persons_note_survives_an_extension(sqlite_url, stub_study):
    finished_search(sqlite_url, stub_study, coarse=8, fine=3)
    save_note(stage_study(sqlite_url, "toy", "coarse"), "reviewed: lr matters")
    finished_search(sqlite_url, stub_study, coarse=12, fine=3)
    assert get_note(stage_study(sqlite_url, "toy", "coarse")) == "reviewed: lr matters"


def test_the_worker_leaves_notes_to_whoever_runs_it(sqlite_url, stub_study):
    spec = load_spec(stub_study(toy_study(coarse=4, fine=2)))
    register_search(st.SearchStore.open(sqlite_url), spec)
    run_worker(WorkerConfig(sqlite_url, spec.name))  # no hook: api.run installs it
    assert [get_note(stage_study(sqlite_url, "toy", s.name)) for s in spec.stages] == ["", ""]


def test_an_unfinished_stage_gets_no_note(sqlite_url, stub_study):
    spec = load_spec(stub_study(toy_study(coarse=6, fine=3)))
    register_search(st.SearchStore.open(sqlite_url), spec)
    run_worker(WorkerConfig(sqlite_url, spec.name, max_trials=4), on_event=on_worker_event)
    store = st.SearchStore.open(sqlite_url)
    assert write_stage_note(store, spec, 0, owner="test") is False
    assert get_note(stage_study(sqlite_url, "toy", "coarse")) == ""


def test_a_one_trial_stage_gets_a_note_without_importance(sqlite_url, stub_study):
    finished_search(sqlite_url, stub_study, coarse=3, fine=1)
    note = get_note(stage_study(sqlite_url, "toy", "fine"))
    assert "### Best 1 trials" in note and "Important parameters" not in note
    view = load_search(st.SearchStore.open(sqlite_url), "toy")
    assert analyze(view).stages[1].importance.values == {}


def test_region_figure_boxes_the_two_most_important_numeric_params(sqlite_url, stub_study):
    finished_search(sqlite_url, stub_study, objective="crash_on_tanh", coarse=12, fine=3)
    view = load_search(st.SearchStore.open(sqlite_url), "toy")
    v = view.stages[0]
    region = v.handed_on

    s = analyze_stage(view.spec, v)
    ranked = Importance({"act": 0.9, "wd": 0.08, "lr": 0.02})
    d = region_figure_data(view.spec, dataclasses.replace(s, importance=ranked))
    assert (d.x.name, d.y.name) == ("wd", "lr")  # the categorical cannot be boxed
    assert d.box_x == (region.space["wd"].low, region.space["wd"].high)
    assert d.box_y == (region.space["lr"].low, region.space["lr"].high)
    assert d.kept == frozenset(region.kept)
    assert {r.number for r in d.bad} == {r.number for r in v.records if r.state == "FAIL"}
    # no importance: the space's order
    unknown = region_figure_data(view.spec, dataclasses.replace(s, importance=Importance()))
    assert (unknown.x.name, unknown.y.name) == ("lr", "wd")

    fig = draw_region_figure(d, "#636efa")
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
    import hpsearch.report.note

    def broken(*args, **kwargs):
        raise optuna.exceptions.StorageInternalError("disk full")

    monkeypatch.setattr(hpsearch.report.note, "stage_note", broken)
    spec = load_spec(stub_study(toy_study(coarse=4, fine=2)))
    register_search(st.SearchStore.open(sqlite_url), spec)
    stats = run_worker(WorkerConfig(sqlite_url, spec.name), on_event=on_worker_event)
    assert stats.completed == 6
    assert "could not write the dashboard note" in caplog.text


def test_workers_finishing_together_leave_one_correct_note(storage_url, stub_study):
    import threading

    from hpsearch.engine.stages import prepare_stage

    spec = load_spec(stub_study(toy_study(coarse=10, fine=4)))
    storage = st.SearchStore.open(storage_url)
    register_search(storage, spec)
    # Prepared before the workers start: on a fresh PostgreSQL database, workers that take
    # their first lease at the same instant race on creating the lease table (reported).
    prepare_stage(storage, spec, 0, owner="test")
    errors: list[BaseException] = []

    def work() -> None:
        try:
            run_worker(WorkerConfig(storage_url, spec.name), on_event=on_worker_event)
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
        assert get_note(study) == expected_note(spec, v)


# ------------------------------------------- the note and `hpsearch report` tell one story


def text_tables(section: str) -> list[list[list[str]]]:
    """The aligned tables of a terminal report section: cells cut at the columns the
    dashed line under each header marks."""
    lines = section.splitlines()
    tables = []
    for i, line in enumerate(lines):
        if not line.strip() or set(line.strip()) != {"-", " "} or i == 0:
            continue
        indent = len(line) - len(line.lstrip())
        starts = [m.start() for m in re.finditer(r"-+", line)]
        rows = []
        for row in lines[i + 1 :]:
            body = row.strip()
            if not row.startswith(" " * indent) or row[indent] == " ":
                break
            if body.startswith(
                ("importance", "promising region", "warning:", "searched:", "matters", "which ")
            ):
                break
            ends = [*starts[1:], len(row)]
            rows.append([row[a:b].strip() for a, b in zip(starts, ends, strict=True)])
        tables.append(rows)
    return tables


def markdown_tables(note: str) -> dict[str, list[list[str]]]:
    """The note's markdown tables by the ``###`` heading they sit under."""
    tables: dict[str, list[list[str]]] = {}
    heading = ""
    for line in note.splitlines():
        if line.startswith("### "):
            heading = line[4:]
        elif line.startswith("|") and not line.startswith("|---"):
            tables.setdefault(heading, []).append(
                [c.strip() for c in line.strip("|").split(" | ")]
            )
    return {h: rows[1:] for h, rows in tables.items()}  # without the header row


def plain(cell: str) -> str:
    """A cell without its rendering's marks: markdown's code quotes, the warning signs."""
    return cell.strip("`").removeprefix("<- ").removeprefix("⚠ ")


def test_the_note_and_hpsearch_report_agree_on_every_fact(sqlite_url, stub_study, tmp_path):
    # lr's optimum (10^-2.5) lies below this range: its best trials press the low edge,
    # and tanh trials fail, so the report has warnings of both kinds to agree on.
    text = toy_study(seed=3, objective="crash_on_tanh", coarse=16, fine=8, max_failures=0)
    path = stub_study(text.replace("low = 1e-5", "low = 0.1"))
    hpsearch.launch(path, storage=sqlite_url, progress=False)  # as a user runs it: api.run
    done = hpsearch_cli("report", "toy", "--storage", sqlite_url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    sections = {s.split(":")[0].removeprefix("stage "): s for s in done.stdout.split("\n\n")}
    spec = load_spec(path)
    warned = []
    for stage in spec.stages:
        note = get_note(stage_study(sqlite_url, "toy", stage.name))
        section = sections[stage.name]
        md = markdown_tables(note)
        best, *region = text_tables(section)
        # best trials and their values, row for row
        assert best and md[f"Best {len(best)} trials"] == best
        # the counts and the region's trials
        counts = section.splitlines()[0].split(" sampler - ")[1]
        assert note.splitlines()[2].endswith(f"sampler · {counts}")
        # what each says of which parameters matter, word for word
        evidence = [x.strip() for x in section.splitlines() if "matter" in x]
        assert evidence and all(f"_{x}_" in note for x in evidence)
        if stage is spec.stages[-1]:
            # the search's promising region: the same rows and the same confidence line
            line = next(x.strip() for x in section.splitlines() if "the evidence is thin" in x
                        or x.strip().startswith("confidence "))  # fmt: skip
            assert line.removeprefix("promising region: ") + "." in note
            if region:
                region_md = next(r for h, r in md.items() if h.startswith("Promising region"))
                assert [[plain(c) for c in r] for r in region_md] == [
                    [plain(c) for c in r] for r in region[0]
                ]
                assert {r[0] for r in region[0]} == {"lr", "wd", "act"}
        else:
            top = re.search(r"promising region \(top (\d+) of (\d+)\)", section).groups()
            sure = [x.strip() for x in section.splitlines() if "best runs fall inside" in x]
            assert all(f"{x}." in note for x in sure)
            if thin_region(int(top[0])):  # a handful of runs: both say so, neither shows a box
                assert not region and "the evidence is thin: the region is spanned by" in note
                assert "the evidence is thin: the region is spanned by" in section
            else:
                assert f"Spanned by the top {top[0]} of {top[1]} trials" in note
                region_md = next(r for h, r in md.items() if h.startswith("Promising region"))
                assert [[plain(c) for c in r] for r in region_md] == [
                    [plain(c) for c in r] for r in region[0]
                ]
        # the importance values and the evaluator that computed them
        evaluator, shown = re.search(r"importance \((\S+)\): (.*)", section).groups()
        values = [pair.split(" ") for pair in shown.split(", ")]
        assert md["Important parameters"] == values
        assert f"| parameter | importance ({evaluator}) |" in note
        # the warnings, word for word
        lines = [ln.strip() for ln in section.splitlines()]
        in_report = [ln.removeprefix("warning: ") for ln in lines if ln.startswith("warning: ")]
        in_note = [ln.removeprefix("- ⚠ ") for ln in note.splitlines() if ln.startswith("- ⚠ ")]
        assert in_note == in_report
        warned += in_report
    assert any("best lr sits at the low edge" in w for w in warned)
    assert any("trials in stage coarse failed" in w for w in warned)
