"""The coarse-to-fine engine end to end, in-process, on real SQLite and PostgreSQL."""

from __future__ import annotations

import math

import optuna
import pytest
from stubs import toy_study

from hpsearch import store as st
from hpsearch.core.space import SearchSpace
from hpsearch.engine.stages import SpecMismatch, register_search
from hpsearch.engine.worker import WorkerConfig, run_worker
from hpsearch.objectives.catalog import load_spec
from hpsearch.report.search import load_search


def launch(url, path, **config):
    spec = load_spec(path)
    register_search(st.SearchStore.open(url), spec)
    return spec, run_worker(WorkerConfig(url, spec.name, **config))


def points(url, name):
    view = load_search(st.SearchStore.open(url), name)
    return {
        v.stage.name: sorted(
            tuple(round(x, 12) if isinstance(x, float) else x for x in r.params.values())
            for r in v.records
            if r.finished
        )
        for v in view.stages
    }


def test_two_stages_run_exact_budgets_and_narrow(storage_url, stub_study):
    spec, stats = launch(storage_url, stub_study(toy_study(coarse=20, fine=8)))
    assert stats.completed == 28 and stats.failed == 0
    storage = st.SearchStore.open(storage_url)
    view = load_search(storage, "toy")
    coarse, fine = view.stages
    assert len(coarse.finished) == 20 and len(fine.finished) == 8
    assert all(r.state == "COMPLETE" for r in coarse.records + fine.records)

    lr0, lr1 = coarse.space["lr"], fine.space["lr"]
    assert math.log10(lr1.high / lr1.low) < math.log10(lr0.high / lr0.low) / 2
    assert lr1.low < 10**-2.5 < lr1.high  # the stub's optimum survives narrowing

    study = optuna.load_study(study_name="toy/fine", storage=storage_url)
    attrs = study.user_attrs
    assert attrs["stage"] == "fine" and attrs["epochs"] == 2 and attrs["ready"] is True
    assert SearchSpace.from_dict(attrs["space"]) == fine.space
    assert attrs["region"]["kept"]
    assert study.metric_names == ["loss"]
    t = study.trials[0]
    assert {"stage", "epochs", "seed", "slot", "worker"} <= t.user_attrs.keys()
    assert t.intermediate_values == {1: pytest.approx(t.value + 0.5), 2: pytest.approx(t.value)}


def test_same_file_evaluates_the_same_points_every_time(tmp_path, stub_study):
    path = stub_study(toy_study(coarse=12, fine=5))
    a, b = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    launch(a, path)
    launch(b, path)
    assert points(a, "toy") == points(b, "toy")
    other = stub_study(toy_study(coarse=12, fine=5, seed=1), name="other.toml")
    c = f"sqlite:///{tmp_path / 'c.db'}"
    launch(c, other)
    assert points(c, "toy")["coarse"] != points(a, "toy")["coarse"]


def test_resume_continues_without_duplicates(sqlite_url, stub_study, tmp_path):
    path = stub_study(toy_study(coarse=10, fine=4))
    _, first = launch(sqlite_url, path, max_trials=6)
    assert first.completed == 6
    _, second = launch(sqlite_url, path)
    assert second.completed == 8
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    launch(fresh, path)
    assert points(sqlite_url, "toy") == points(fresh, "toy")
    view = load_search(st.SearchStore.open(sqlite_url), "toy")
    assert [len(v.records) for v in view.stages] == [10, 4]


def test_a_different_spec_under_the_same_name_is_refused(sqlite_url, stub_study):
    launch(sqlite_url, stub_study(toy_study(coarse=4, fine=2)))
    changed = load_spec(stub_study(toy_study(coarse=4, fine=2, seed=1), name="changed.toml"))
    with pytest.raises(SpecMismatch, match=r"seed: stored 0, file 1"):
        register_search(st.SearchStore.open(sqlite_url), changed)


def test_failed_and_nan_trials_count_towards_the_budget_with_a_reason(sqlite_url, stub_study):
    _, stats = launch(  # max_failures = 0: they count, rather than stop the search
        sqlite_url,
        stub_study(toy_study(objective="crash_on_tanh", coarse=12, fine=4, max_failures=0)),
    )
    view = load_search(st.SearchStore.open(sqlite_url), "toy")
    coarse = view.stages[0]
    failed = [r for r in coarse.records if r.state == "FAIL"]
    assert failed and all("tanh is not supported" in r.attrs["fail_reason"] for r in failed)
    assert len(coarse.finished) == 12 and stats.failed == len(failed) + sum(
        r.state == "FAIL" for r in view.stages[1].records
    )
    assert view.stages[1].space["act"].choices == ("relu",)


def test_nan_is_never_told_to_the_storage(sqlite_url, stub_study):
    launch(sqlite_url, stub_study(toy_study(objective="nan_on_tanh", coarse=8, fine=2)))
    view = load_search(st.SearchStore.open(sqlite_url), "toy")
    bad = [r for r in view.stages[0].records if r.params["act"] == "tanh"]
    assert bad and all(r.state == "FAIL" and "finite" in r.attrs["fail_reason"] for r in bad)


@pytest.mark.parametrize("sampler", ["sobol", "grid", "tpe"])
def test_every_sampler_runs_its_exact_budget(sqlite_url, stub_study, sampler):
    launch(sqlite_url, stub_study(toy_study(coarse=16, fine=3, sampler=sampler)))
    view = load_search(st.SearchStore.open(sqlite_url), "toy")
    coarse = view.stages[0]
    assert len(coarse.finished) == 16 and len(view.stages[1].finished) == 3
    distinct = {r.params["lr"] for r in coarse.records}
    assert len(distinct) == (4 if sampler == "grid" else 16)  # grid: 4 lr x 2 wd x 2 act


def test_the_fine_stage_models_every_coarse_trial_from_storage(tmp_path, stub_study):
    """A TPE stage after the first is seeded with the earlier stage's trials, read from
    storage at their fidelity (1-epoch runs for a 2-epoch stage: ranking only), and
    samples over the whole space with the narrowed box as its prior; one worker gives
    the same points again."""
    from optuna.trial import TrialState

    from hpsearch.engine.fine import FineSampler
    from hpsearch.engine.stages import open_stage

    path = stub_study(toy_study(coarse=12, fine=4) + 'sampler = "tpe"\n')
    urls = [f"sqlite:///{tmp_path / f'{i}.db'}" for i in range(2)]
    for url in urls:
        spec, stats = launch(url, path)
        assert stats.completed == 16
    store = st.SearchStore.open(urls[0])
    stage = open_stage(store, spec, 1)
    sampler = stage.study.sampler
    assert isinstance(sampler, FineSampler)
    _, view = sampler._pick(stage.study)
    seen = view._get_trials(deepcopy=False)
    earlier = [t for t in seen if t.number < 0]
    assert len(earlier) == 12 and len(seen) == 16
    assert all(t.state == TrialState.PRUNED for t in earlier)  # shorter runs rank only
    coarse_params = sorted(r.params["lr"] for r in load_search(store, "toy").stages[0].records)
    assert sorted(t.params["lr"] for t in earlier) == coarse_params

    view_ = load_search(store, "toy")
    coarse, fine = view_.stages
    assert fine.space == coarse.space  # the hull: the box is a prior, not a wall
    box = fine.region_in.space["lr"]
    assert box.high / box.low < coarse.space["lr"].high / coarse.space["lr"].low
    assert points(urls[0], "toy") == points(urls[1], "toy")
