"""Slots enqueued in bulk (issue 20, item 5): batches that grow, each fenced and
idempotent, and the rows they write ordinary Optuna trials with their params."""

from __future__ import annotations

import optuna

from hpsearch.core.space import SearchSpace
from hpsearch.store import SearchStore
from hpsearch.store.model import NewSlot, Stage

SPACE = {
    "lr": {"low": 1e-5, "high": 1e-1, "log": True},
    "layers": {"low": 1, "high": 8, "log": False, "step": 1},
    "act": {"choices": ["relu", "tanh"]},
}


def slot(i: int) -> NewSlot:
    point = {"lr": 10 ** (-5 + (i % 4)), "layers": 1 + i % 8, "act": ("relu", "tanh")[i % 2]}
    return NewSlot(i, point, {"slot": i, "stage": "coarse", "epochs": 3, "seed": i})


def test_bulk_enqueue_writes_every_slot_once_with_its_params(storage_url):
    store = SearchStore.open(storage_url)
    study = optuna.create_study(storage=store.dashboard_storage(), study_name="b/coarse")
    stage = Stage("b/coarse", study._study_id, study)
    space = SearchSpace.from_dict(SPACE)
    lease = store.lease("b/coarse", owner="t:1", duration_s=60)
    assert lease.acquire()
    assert store.enqueue(stage, space, [slot(i) for i in range(700)], lease) == 700
    # again, and more: only the missing ones go in (a preparer taken over mid-way)
    assert store.enqueue(stage, space, [slot(i) for i in range(2500)], lease) == 1800
    lease.release()
    trials = study.get_trials(deepcopy=False)
    assert [t.number for t in trials] == list(range(2500))
    assert {t.state.name for t in trials} == {"WAITING"}
    for t in (trials[0], trials[1333], trials[-1]):
        i = t.user_attrs["slot"]
        assert t.params == slot(i).point and t.user_attrs == slot(i).user_attrs
