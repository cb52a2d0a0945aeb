"""A finished stage's note is drawn while its writer goes on (``api.run``'s hook): the
writer does not idle at the next stage's start; a search that ended has every note."""

from __future__ import annotations

import threading

from optuna_dashboard import get_note
from stored import stage_study
from stubs import toy_study
from test_workers import assert_exact, finish, register, start_worker

from hpsearch.report import note


def test_a_stage_before_the_last_is_drawn_in_the_background_the_last_after_it(monkeypatch):
    release, order = threading.Event(), []

    def draw(kind, info):
        if info["index"] == 0:
            assert release.wait(10)
        order.append(info["index"])

    monkeypatch.setattr(note, "on_worker_event_in_child", draw)

    class Spec:
        stages = ("coarse", "fine")

    note.on_worker_event_in_background("stage_done", {"index": 0, "spec": Spec})
    assert order == []  # returned while stage 0's note is still being drawn
    threading.Timer(0.2, release.set).start()
    note.on_worker_event_in_background("stage_done", {"index": 1, "spec": Spec})
    assert order == [0, 1]  # the last stage waited for the note still being drawn
    note.wait_for_notes()


def test_workers_leave_every_stage_its_note(storage_url, stub_study):
    path = stub_study(toy_study(objective="sleepy", coarse=8, fine=4))
    register(storage_url, path)
    outs = finish([start_worker(storage_url) for _ in range(2)])
    assert all("Traceback" not in o for o in outs), outs
    assert_exact(storage_url)
    for stage in ("coarse", "fine"):
        text = get_note(stage_study(storage_url, "toy", stage))
        assert text.startswith(f"## Stage `{stage}` of search `toy`")
