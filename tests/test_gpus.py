"""One GPU per local worker: the split, and the environment each worker process receives.

Runs without a GPU: the workers are real processes, and a stub objective records the
``CUDA_VISIBLE_DEVICES`` it was started with.
"""

from __future__ import annotations

from collections import defaultdict

import optuna
import pytest
from cli_runner import child_pythonpath
from stubs import toy_study

from hpsearch import store as st
from hpsearch.engine.local_workers import gpu_split, run_local_workers, visible_gpus
from hpsearch.engine.stages import register_search
from hpsearch.objectives.catalog import load_spec


@pytest.mark.parametrize(
    ("workers", "gpus", "per", "expected"),
    [
        (4, ["0", "1", "2", "3"], 1, ["0", "1", "2", "3"]),
        (4, ["0", "1"], 1, ["0", "1", "0", "1"]),  # more workers than GPUs: shared evenly
        (2, ["0", "1", "2", "3"], 2, ["0,1", "2,3"]),
        (3, ["4", "6"], 1, ["4", "6", "4"]),  # the ids a scheduler gave, not 0..n-1
        (2, [], 1, [None, None]),  # no GPU: nothing set
    ],
)
def test_gpus_are_split_round_robin(workers, gpus, per, expected):
    assert gpu_split(workers, gpus, per) == expected


def test_visible_gpus_follow_the_schedulers_setting(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert visible_gpus() == ["2", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []


@pytest.mark.parametrize(("device", "split"), [("cuda", True), ("cpu", False)])
def test_each_local_worker_gets_its_own_gpu(sqlite_url, stub_study, monkeypatch, device, split):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.setenv("PYTHONPATH", child_pythonpath())
    monkeypatch.setenv("STUB_SLEEP", "0.2")
    spec = load_spec(stub_study(toy_study(objective="gpu_seen", coarse=8, fine=2)))
    register_search(st.SearchStore.open(sqlite_url), spec)
    assert run_local_workers(sqlite_url, spec.name, spec, 2, device=device, poll_s=0.2) == 0
    seen = defaultdict(set)
    for t in optuna.load_study(study_name="toy/coarse", storage=sqlite_url).get_trials():
        seen[t.user_attrs["worker"]].add(t.user_attrs["cuda_visible_devices"])
    if split:
        assert all(len(s) == 1 for s in seen.values())  # one GPU per worker, kept
        given = [next(iter(s)) for s in seen.values()]
        assert len(set(given)) == len(given) and set(given) <= {"0", "1"}
    else:
        assert set().union(*seen.values()) == {"0,1"}  # left as the launcher had it
