"""Early stopping inside a stage (``stop_early``): stopped runs recorded as PRUNED with their
epochs and curves, an exact epoch budget on 1 and 4 workers, narrowing, promotion and the
recommended run that never take a stopped run for a finished one, and one worker's search
a function of the seed."""

from __future__ import annotations

import dataclasses
import threading
import tomllib
from collections import Counter

import optuna
import pytest
from test_workers import env_for, finish, register, start_worker

from hpsearch import store as st
from hpsearch.core.points import continue_points, make_points, promoted_points
from hpsearch.core.records import TrialRecord, recommended
from hpsearch.core.regions import narrow
from hpsearch.core.space import FloatParam, SearchSpace
from hpsearch.core.spec import SpecError
from hpsearch.engine.stages import prepare_stage, register_search, stop_early
from hpsearch.engine.worker import WorkerConfig, run_worker
from hpsearch.objectives.catalog import load_spec, parse_spec, spec_from_dict
from hpsearch.report.search import load_search
from hpsearch.report.terminal import format_status

EPOCHS = 9

STUDY = """
name = "{name}"
objective = "stubs:{objective}"
metric = "loss"
seed = {seed}
[space.lr]
low = 1e-5
high = 1.0
log = true
[space.act]
choices = ["relu", "tanh"]
[[stage]]
name = "coarse"
trials = {coarse}
epochs = {epochs}
sampler = "sobol"
stop_early = "{rule}"
[[stage]]
name = "fine"
trials = {fine}
epochs = {epochs}
sampler = "{fine_sampler}"
keep = 0.25
promote = 2
stop_early = "{rule}"
"""


def study(
    name: str = "toy",
    objective: str = "quadratic",
    seed: int = 0,
    coarse: int = 12,
    fine: int = 6,
    epochs: int = EPOCHS,
    rule: str = "asha",
    fine_sampler: str = "tpe",
) -> str:
    return STUDY.format(
        name=name,
        objective=objective,
        seed=seed,
        coarse=coarse,
        fine=fine,
        epochs=epochs,
        rule=rule,
        fine_sampler=fine_sampler,
    )


def launch(url: str, path, **config) -> None:
    spec = load_spec(path)
    register_search(st.SearchStore.open(url), spec)
    run_worker(WorkerConfig(url, spec.name, **config))


def trials(url: str, stage: str, name: str = "toy") -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=f"{name}/{stage}", storage=url).get_trials()


def assert_exact_epochs(url: str, name: str = "toy") -> dict[str, list[tuple]]:
    """Every stage spent its epoch budget to within one run, never more, each slot once,
    nothing left open. Returns each stage's trials as (slot, state, epochs run, params)."""
    spec = load_spec_of(url, name)
    out = {}
    for stage in spec.stages:
        ts = [t for t in trials(url, stage.name, name) if "retry_history" not in t.system_attrs]
        assert not [t for t in ts if t.state.name in ("RUNNING", "WAITING")]
        slots = sorted(t.user_attrs["slot"] for t in ts)
        assert slots == list(range(len(slots))), Counter(slots).most_common(3)
        spent = sum(t.user_attrs.get("epochs_run", stage.epochs) for t in ts)
        budget = stage.trials * stage.epochs
        assert budget - stage.epochs < spent <= budget, (stage.name, spent, budget)
        out[stage.name] = sorted(
            (
                t.user_attrs["slot"],
                t.state.name,
                t.user_attrs.get("epochs_run"),
                tuple(round(v, 12) if isinstance(v, float) else v for v in t.params.values()),
            )
            for t in ts
        )
    return out


def load_spec_of(url: str, name: str):
    spec = st.SearchStore.open(url).find_spec(name)
    assert spec is not None
    return spec


@pytest.mark.slow_on("postgres")
def test_a_stopped_run_is_pruned_with_the_epochs_it_ran_its_curve_and_last_value(
    storage_url, stub_study
):
    launch(storage_url, stub_study(study()))
    for stage in ("coarse", "fine"):
        ts = trials(storage_url, stage)
        stopped = [t for t in ts if t.state.name == "PRUNED"]
        assert stopped and any(t.state.name == "COMPLETE" for t in ts)
        for t in stopped:
            run = t.user_attrs["epochs_run"]
            assert 1 <= run < EPOCHS and run in (1, 3)  # asha's rungs: 1, 3 (x 3)
            assert sorted(t.intermediate_values) == list(range(1, run + 1))  # its curve
            assert t.value == pytest.approx(t.intermediate_values[run])  # as Optuna records
            assert "wall_seconds" in t.user_attrs
        for t in ts:
            if t.state.name == "COMPLETE":
                assert len(t.intermediate_values) == EPOCHS and "epochs_run" not in t.user_attrs
    view = load_search(st.SearchStore.open(storage_url), "toy")
    for v in view.stages:
        assert v.counts["stopped"] == sum(r.state == "PRUNED" for r in v.records)
        assert v.epochs_saved == sum(
            EPOCHS - r.attrs["epochs_run"] for r in v.records if r.attrs.get("epochs_run")
        )
        assert not any(r.ok for r in v.records if r.state == "PRUNED")
    status = format_status(view)
    assert (
        f"stopped {view.stages[0].counts['stopped']} ({view.stages[0].epochs_saved} epochs saved)"
        in status
    )


@pytest.mark.slow_on("sqlite")
def test_one_worker_spends_the_exact_epoch_budget(storage_url, stub_study):
    launch(storage_url, stub_study(study()))
    stages = assert_exact_epochs(storage_url)
    # the stopped runs' epochs bought more runs than the stage's trials
    assert len(stages["coarse"]) > 12 and len(stages["fine"]) > 6


def test_a_launch_of_two_workers_on_stages_that_stopped_runs_completes_and_exits_0(
    tmp_path, stub_study
):
    """Its stages have more slots than their ``trials``: the launch must still see the
    search complete (it once said "did not complete" and exited 1)."""
    from cli_runner import hpsearch

    path = stub_study(study(coarse=8, fine=4))
    r = hpsearch("launch", path.name, "--workers", "2", "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "did not complete" not in r.stderr
    stages = assert_exact_epochs(f"sqlite:///{tmp_path}/hpsearch.db")
    assert len(stages["coarse"]) > 8  # runs were stopped and their epochs bought more


@pytest.mark.slow
def test_four_workers_spend_the_exact_epoch_budget(storage_url, stub_study):
    path = stub_study(study(objective="sleepy", coarse=16, fine=6))
    register(storage_url, path)
    outs = finish([start_worker(storage_url, sleep=0.02) for _ in range(4)], timeout=240)
    assert all("Traceback" not in o for o in outs), outs
    stages = assert_exact_epochs(storage_url)
    assert len(stages["coarse"]) > 16
    workers = {t.user_attrs["worker"] for t in trials(storage_url, "coarse")}
    assert len(workers) >= 2  # the load was shared


def test_workers_recording_stops_at_once_append_each_slot_once(storage_url, stub_study):
    """8 threads, each with its own connections, record a stop at the same moment: the
    stage gets exactly the slots the saved epochs buy (budget 10 x 9 epochs; 8 runs
    stopped after 1 epoch save 64 epochs, which buy 7 runs), numbered without a gap."""
    spec = parse_spec(tomllib.loads(study(coarse=10, fine=2)))
    store = st.SearchStore.open(storage_url)
    register_search(store, spec)
    stage = prepare_stage(store, spec, 0, owner="test")
    attrs = store.stage_attrs(stage)
    space = SearchSpace.from_dict(attrs[st.ATTR_SPACE])
    early = stop_early(spec, attrs)
    claimed = [store.claim(stage, space, worker="t", stop_early=early) for _ in range(8)]
    barrier = threading.Barrier(8)
    added = []

    def stop(slot) -> None:
        slot.last, slot.stopped_at = (1, 1.0), 1  # as report(...) leaves a stopped slot
        barrier.wait()
        added.append(slot.finish_stopped({}))

    threads = [threading.Thread(target=stop, args=(s,)) for s in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert added == [True] * 8
    ts = trials(storage_url, "coarse")
    assert sorted(t.user_attrs["slot"] for t in ts) == list(range(17))
    assert sum(t.state.name == "PRUNED" for t in ts) == 8
    # and the appended slots continue the stage's Sobol sequence
    seq = make_points("sobol", space, 17, attrs[st.ATTR_SEED])
    for t in ts:
        point = seq[t.user_attrs["slot"]]
        assert t.params["act"] == point["act"] and t.params["lr"] == pytest.approx(point["lr"])


@pytest.mark.slow  # tests/test_engine.py checks the same points for the same file
def test_one_worker_runs_the_same_search_for_the_same_seed(tmp_path, stub_study):
    path = stub_study(study(fine_sampler="tpe"))
    runs = []
    for i in range(2):
        url = f"sqlite:///{tmp_path / f'run{i}.db'}"
        launch(url, path)
        runs.append(assert_exact_epochs(url))
    assert runs[0] == runs[1]
    other = stub_study(study(seed=1), name="other.toml")
    url = f"sqlite:///{tmp_path / 'seed1.db'}"
    launch(url, other)
    assert assert_exact_epochs(url) != runs[0]


def test_narrowing_and_promotion_use_only_finished_runs_of_a_stage_that_stopped_some(
    sqlite_url, stub_study
):
    launch(sqlite_url, stub_study(study(coarse=20)))
    view = load_search(st.SearchStore.open(sqlite_url), "toy")
    coarse, fine = view.stages
    states = {r.number: r.state for r in coarse.records}
    assert "PRUNED" in states.values()
    assert fine.region_in is not None
    assert {states[n] for n in fine.region_in.kept} == {"COMPLETE"}
    promoted = [r for r in fine.records if r.slot in (0, 1)]
    complete = {tuple(sorted(r.params.items())) for r in coarse.records if r.state == "COMPLETE"}
    assert all(tuple(sorted(r.params.items())) in complete for r in promoted)


def test_a_stopped_run_never_ranks_narrows_or_wins_even_with_a_better_value():
    space = SearchSpace((FloatParam("x", 0.0, 1.0),))
    runs = [
        TrialRecord(i, "s", "COMPLETE", {"x": 0.5 + i / 100}, value=1.0 + i, epochs=9)
        for i in range(4)
    ]
    # stopped early at a better value so far, far from the finished runs
    stopped = [
        TrialRecord(
            10 + i, "s", "PRUNED", {"x": 0.01 * i}, value=0.0, epochs=9, attrs={"epochs_run": 1}
        )
        for i in range(4)
    ]
    region = narrow(space, runs + stopped, keep=0.5, margin=0.0, direction="minimize")
    assert set(region.kept) <= {0, 1, 2, 3}
    assert region.space["x"].low > 0.3
    assert [p["x"] for p in promoted_points(space, runs + stopped, 2, "minimize")] == [0.5, 0.51]
    assert recommended(runs + stopped, "minimize").number == 0


def test_the_median_rule_stops_runs_and_spends_the_budget(sqlite_url, stub_study):
    launch(sqlite_url, stub_study(study(rule="median", coarse=16, fine=4)))
    assert any(t.state.name == "PRUNED" for t in trials(sqlite_url, "coarse"))
    assert_exact_epochs(sqlite_url)


@pytest.mark.parametrize("rule", ["asha", "median"])
@pytest.mark.slow_on("postgres")
def test_the_pruners_lean_view_holds_what_the_study_holds_and_decides_alike(
    storage_url, stub_study, rule
):
    """``store.PruningStudy`` serves pruners a lean read instead of the whole study; it
    must give them the same trials, curves and rung values, so the same decisions."""
    from optuna.trial import TrialState

    from hpsearch.engine.stages import pruner

    path = stub_study(study(rule=rule, coarse=16, fine=4))
    launch(storage_url, path)
    store = st.SearchStore.open(storage_url)
    stage = store.find_stage("toy", "coarse")
    view = st.PruningStudy(store.dashboard_storage(), stage)
    full = [t for t in stage.study.get_trials(deepcopy=False) if t.state != TrialState.WAITING]
    lean = view.get_trials(deepcopy=False)
    assert [t.number for t in lean] == [t.number for t in full]
    assert any(t.state == TrialState.PRUNED for t in full)
    for t, mine in zip(full, lean, strict=True):
        rungs = {k: v for k, v in t.system_attrs.items() if k.startswith("completed_rung_")}
        assert (mine.state, mine.intermediate_values, mine.system_attrs) == (
            t.state, t.intermediate_values, rungs,
        )  # fmt: skip
    bare = st.PruningStudy(store.dashboard_storage(), stage, curves=False)
    assert [(t.number, t.system_attrs, t.intermediate_values) for t in bare.get_trials()] == [
        (t.number, t.system_attrs, {}) for t in lean
    ]
    complete = view.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert [t.number for t in complete] == [t.number for t in full if t.state.name == "COMPLETE"]
    assert view.get_trials(deepcopy=False, states=(TrialState.WAITING,)) == []
    if rule == "median":  # successive halving writes its rung attr: only finished trials here
        rule_of = pruner(load_spec(path).stages[0])
        assert [rule_of.prune(view, t) for t in full] == [
            rule_of.prune(stage.study, t) for t in full
        ]


@pytest.mark.parametrize(
    ("least", "factor", "epochs"), [(1, 3, 9), (1, 3, 8), (2, 2, 17), (3, 4, 3)]
)
def test_the_plans_rungs_are_where_successive_halving_decides(least, factor, epochs):
    """``stages.decision_epochs`` (the plan's rungs) against Optuna's pruner itself: a run
    that is never stopped records a rung exactly at those epochs, and the pruner stops
    none elsewhere."""
    from hpsearch.engine.stages import decision_epochs, pruner

    base = parse_spec(tomllib.loads(study(epochs=epochs))).stages[0]
    stage = dataclasses.replace(base, min_epochs=least, reduction_factor=factor)
    rungs = decision_epochs(stage)
    solo = optuna.create_study(pruner=pruner(stage))
    trial = solo.ask()
    recorded = []
    for epoch in range(1, epochs):
        trial.report(1.0 / epoch, epoch)
        before = len(solo._storage.get_trial(trial._trial_id).system_attrs)
        assert not trial.should_prune()  # alone, it is always in the top 1/factor
        if len(solo._storage.get_trial(trial._trial_id).system_attrs) > before:
            recorded.append(epoch)
    assert rungs == tuple(recorded)
    assert decision_epochs(dataclasses.replace(base, stop_early="median")) is None


@pytest.mark.parametrize("objective", ["quadratic", "sparse"])
def test_asking_the_pruner_only_at_its_rungs_stops_the_same_runs(
    sqlite_url, tmp_path, stub_study, monkeypatch, objective
):
    """The same seeded search (Sobol with ASHA, then TPE with ASHA) with the pruner asked
    after every epoch and only at its rungs (``StopEarly.decides_at``): the same runs are
    stopped after the same epochs, with the same rung values and the same TPE points, and
    the stage's trials are read for it less often. ``sparse`` reports every other
    epoch: it passes rung 1 and 3 at epochs 2 and 4 without reporting them."""
    from hpsearch.engine import stages
    from hpsearch.store import slot

    path = stub_study(study(objective=objective, coarse=16, fine=8))
    reads = []
    counted = slot.pruning_trials
    monkeypatch.setattr(
        slot, "pruning_trials", lambda *a, **k: reads.append(1) or counted(*a, **k)
    )

    def search(url: str) -> tuple:
        reads.clear()
        launch(url, path)
        rungs = {
            s: sorted(
                (t.number, sorted(t.system_attrs.items()))
                for t in trials(url, s)
                if t.system_attrs
            )
            for s in ("coarse", "fine")
        }
        return assert_exact_epochs(url), rungs, len(reads)

    at_rungs = search(sqlite_url)
    monkeypatch.setattr(stages, "decision_epochs", lambda stage: None)
    every_epoch = search(f"sqlite:///{tmp_path / 'every.db'}")
    assert at_rungs[:2] == every_epoch[:2]
    assert any(state == "PRUNED" for runs in at_rungs[0].values() for _, state, _, _ in runs)
    assert at_rungs[2] < every_epoch[2]


def test_continued_points_leave_the_first_ones_unchanged():
    space = SearchSpace((FloatParam("a", 0.0, 1.0), FloatParam("b", 1e-5, 1.0, log=True)))
    for sampler in ("random", "sobol"):
        first = make_points(sampler, space, 10, 7)
        assert make_points(sampler, space, 25, 7)[:10] == first
        assert first + continue_points(sampler, space, 10, 15, 7) == make_points(
            sampler, space, 25, 7
        )
    assert continue_points("tpe", space, 4, 2, 7) == [{}, {}]


def test_a_spec_without_early_stopping_stores_no_new_keys_and_one_with_it_round_trips():
    import tomllib

    plain = parse_spec({**BASE, "stage": [{"name": "a", "trials": 4}]})
    assert "stop_early" not in plain.to_dict()["stage"][0]
    spec = parse_spec(tomllib.loads(study()))
    assert spec.stages[0].stop_early == "asha" and spec.stages[0].budget == 12 * EPOCHS
    again = spec_from_dict(spec.to_dict())
    assert again.stages == spec.stages


BASE = {
    "name": "s",
    "objective": "stubs:quadratic",
    "space": {"lr": {"low": 1e-5, "high": 1.0, "log": True}},
}


@pytest.mark.parametrize(
    ("stage", "field", "fragment"),
    [
        ({"stop_early": "hyperband"}, "stage[0].stop_early", "must be one of 'asha', 'median'"),
        ({"stop_early": True}, "stage[0].stop_early", "must be a string"),
        ({"stop_early": "asha", "epochs": 1}, "stage[0].stop_early", "nothing to stop early"),
        ({"stop_early": "asha", "min_epochs": 9}, "stage[0].min_epochs", "`1 <= min_epochs < epochs` must hold, but got min_epochs = 9, epochs = 9"),
        ({"stop_early": "asha", "reduction_factor": 1}, "stage[0].reduction_factor", ">= 2, but got 1"),
        ({"stop_early": "median", "reduction_factor": 3}, "stage[0].reduction_factor", '"asha" only'),
        ({"reduction_factor": 3}, "stage[0].reduction_factor", 'applies with stop_early = "asha"'),
        ({"min_epochs": 2}, "stage[0].min_epochs", 'applies with stop_early = "asha" or "median"'),
        ({"stop_early": "asha", "sampler": "grid", "trials": 4}, "stage[0].stop_early", "a grid cannot grow"),
        ({"stop_erly": "asha"}, "stage[0].stop_erly", "did you mean `stop_early`"),
    ],
)  # fmt: skip
def test_bad_early_stopping_is_refused_with_its_field_and_the_fix(stage, field, fragment):
    data = {**BASE, "stage": [{"name": "a", "trials": 8, "epochs": 9, **stage}]}
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    assert any(f == field and fragment in m for f, m in info.value.problems), info.value.problems


def test_a_bad_stop_early_exits_2_and_writes_nothing(tmp_path, stub_study):
    import subprocess
    import sys

    from cli_runner import child_pythonpath

    path = stub_study(study(rule="hyperbnd"))
    db = tmp_path / "x.db"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hpsearch.cli",
            "launch",
            str(path),
            "--storage",
            f"sqlite:///{db}",
        ],
        capture_output=True,
        text=True,
        env={**env_for(f"sqlite:///{db}"), "PYTHONPATH": child_pythonpath()},
    )
    assert proc.returncode == 2, proc.stderr
    assert "stage[0].stop_early: must be one of 'asha', 'median'" in proc.stderr
    assert not db.exists()
