"""The Python API end to end on the stub problem: launch, load, tables, best, regions."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from stubs import toy_study

import hpsearch
from hpsearch.core.errors import UserError


def notebook_objective(params: dict, epochs: int, report) -> float:
    """Defined here, as a notebook user would: passed to the API as the function itself."""
    value = (math.log10(params["lr"]) + 2.0) ** 2
    for epoch in range(1, epochs + 1):
        report(epoch, value + 1.0 / epoch)
    return value + 1.0 / epochs


def test_launch_from_a_toml_string_then_inspect(sqlite_url):
    search = hpsearch.launch(toy_study(coarse=12, fine=4), storage=sqlite_url)
    assert isinstance(search, hpsearch.Search) and search.name == "toy"

    trials = search.trials()
    assert len(trials) == 16 and list(trials["stage"].unique()) == ["coarse", "fine"]
    assert trials["number"].dtype == "Int64" and trials["value"].dtype == "Float64"
    assert trials["ok"].dtype == "boolean" and {"param_lr", "param_wd", "param_act"} <= set(
        trials.columns
    )
    assert (trials["state"] == "COMPLETE").all()

    curves = search.curves()
    assert list(curves.columns) == ["stage", "number", "epoch", "value"]
    assert len(curves) == 12 * 1 + 4 * 2  # one value per epoch reported

    regions = search.regions()
    assert set(regions) == {"coarse", "fine"}
    assert regions["coarse"].space["lr"].low > 1e-5  # narrowed

    best = search.best()
    fine = trials[(trials["stage"] == "fine") & trials["ok"]]
    assert best["value"] == fine["value"].min() and best["stage"] == "fine"
    assert set(best["params"]) >= {"lr", "wd", "act"}
    assert "coarse" in search.status()
    again = hpsearch.load("toy", storage=sqlite_url)
    assert again.trials().equals(trials)


def test_a_callable_objective_and_report_files(sqlite_url, tmp_path):
    spec = {
        "name": "nb",
        "objective": "stubs:quadratic",  # replaced by the callable below
        "metric": "loss",
        "space": {"lr": {"low": 1e-5, "high": 1.0, "log": True}},
        "stage": [{"name": "coarse", "trials": 8, "epochs": 1}],
    }
    search = hpsearch.launch(spec, storage=sqlite_url, objective=notebook_objective)
    best = search.trials().sort_values("value").iloc[0]
    assert math.isclose(best["value"], (math.log10(best["param_lr"]) + 2.0) ** 2 + 1.0)
    text = search.report(html=str(tmp_path / "r.html"), csv=str(tmp_path / "r.csv"))
    assert "stage coarse" in text
    assert len(pd.read_csv(tmp_path / "r.csv")) == 8 and (tmp_path / "r.html").stat().st_size


def test_a_lambda_cannot_go_to_worker_processes(sqlite_url):
    with pytest.raises(UserError, match="cannot be imported by name"):
        hpsearch.launch(toy_study(), storage=sqlite_url, workers=2, objective=lambda p, e, r: 0.0)


def test_load_names_the_searches_that_are_there(sqlite_url):
    hpsearch.launch(toy_study(coarse=4, fine=1), storage=sqlite_url)
    with pytest.raises(UserError, match=r"no search named 'nope' \(searches here: toy\)"):
        hpsearch.load("nope", storage=sqlite_url)
