"""``hpsearch compare``: grid and random baselines at the plan's epoch budget, resumable,
the same points on rerun, and the distinct values each method tried."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from cli_runner import child_pythonpath
from stubs import toy_study

from hpsearch import store as st
from hpsearch.engine.worker import WorkerConfig, run_worker
from hpsearch.objectives.catalog import load_spec, parse_spec
from hpsearch.report.comparison import method_result
from hpsearch.report.search import load_baselines, load_search
from hpsearch.tasks.compare import CompareError, baseline_spec, register_baselines


def run_compare(url, path):
    spec = load_spec(path)
    for key in register_baselines(st.SearchStore.open(url), spec):
        run_worker(WorkerConfig(url, key))
    storage = st.SearchStore.open(url)
    return spec, load_search(storage, spec.name), load_baselines(storage, spec.name)


def params_of(view):
    return sorted(tuple(sorted(r.params.items())) for r in view.stages[0].records)


@pytest.mark.slow_on("postgres")
def test_baselines_spend_the_plans_budget_and_count_distinct_values(storage_url, stub_study):
    spec, view, baselines = run_compare(storage_url, stub_study(toy_study(coarse=20, fine=8)))
    assert spec.total_epochs == 20 * 1 + 8 * 2
    assert sorted(baselines) == ["grid", "random"]
    for method, b in baselines.items():
        (stage,) = b.spec.stages
        assert stage.name == f"{method}-baseline" and stage.epochs == 2
        assert stage.trials * stage.epochs == spec.total_epochs  # 18 x 2: the grid fits exactly
        assert len(b.stages[0].finished) == 18
    grid = method_result("grid", baselines["grid"]).distinct
    rand = method_result("random", baselines["random"]).distinct
    assert grid == {"lr": 3, "wd": 3, "act": 2}  # 18 = 3 x 3 x 2
    assert rand["lr"] == rand["wd"] == 18 and rand["act"] == 2
    # the search itself is untouched and still found by its name alone
    assert [v.stage.name for v in view.stages] == ["coarse", "fine"]
    assert st.SearchStore.open(storage_url).search_names() == ["toy"]


def test_rerun_resumes_with_the_same_points_and_a_fresh_storage_repeats_them(
    sqlite_url, stub_study, tmp_path
):
    path = stub_study(toy_study(coarse=20, fine=8))
    _, _, first = run_compare(sqlite_url, path)
    _, _, again = run_compare(sqlite_url, path)  # resumes: nothing new runs
    assert all(len(again[m].stages[0].records) == 18 for m in again)
    other = f"sqlite:///{tmp_path / 'other.db'}"
    _, _, fresh = run_compare(other, path)
    for method in ("grid", "random"):
        assert params_of(first[method]) == params_of(again[method]) == params_of(fresh[method])


def test_grid_uses_the_largest_full_grid_within_the_budget():
    spec = parse_spec(
        {
            "name": "g",
            "objective": "stubs:quadratic",
            "space": {
                "lr": {"low": 1e-5, "high": 1.0, "log": True},
                "wd": {"low": 0.0, "high": 1.0},
            },
            "stage": [
                {"name": "a", "trials": 24, "epochs": 1},
                {"name": "b", "trials": 3, "epochs": 3},
            ],
        }
    )
    assert spec.total_epochs == 33
    grid, rand = baseline_spec(spec, "grid"), baseline_spec(spec, "random")
    assert rand.stages[0].trials == 11  # 33 // 3
    assert grid.stages[0].trials == 10  # 11 is prime: no grid; 10 = 5 x 2 is the largest
    assert grid.seed != spec.seed and rand.seed != grid.seed


def test_a_reserved_stage_name_is_refused():
    spec = parse_spec(
        {
            "name": "g",
            "objective": "stubs:quadratic",
            "space": {"lr": {"low": 1e-5, "high": 1.0, "log": True}},
            "stage": [{"name": "grid-baseline", "trials": 4}],
        }
    )
    with pytest.raises(CompareError, match="'grid-baseline' is reserved"):
        baseline_spec(spec, "grid")


def test_compare_command_prints_the_three_methods(tmp_path, stub_study):
    path = stub_study(toy_study(coarse=8, fine=4))
    env = {k: v for k, v in os.environ.items() if k != "HPSEARCH_STORAGE"}
    env["PYTHONPATH"] = child_pythonpath()
    r = subprocess.run(
        [sys.executable, "-m", "hpsearch.cli", "compare", str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "the same budget of 16 epochs for each method" in r.stdout
    for line in (
        "coarse-to-fine  8 x 1 + 4 x 2 epochs",
        "grid            8 x 2 epochs",
        "random          8 x 2 epochs",
    ):
        assert line in r.stdout
    assert "distinct values tried per parameter:" in r.stdout
