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


SPEC = {
    "name": "nb",
    "metric": "loss",
    "space": {"lr": {"low": 1e-5, "high": 1.0, "log": True}},
    "stage": [{"name": "coarse", "trials": 6, "epochs": 1}, {"name": "fine", "trials": 3}],
}


def test_a_dict_spec_needs_no_objective_key_and_reads_like_the_report(sqlite_url):
    search = hpsearch.launch(dict(SPEC), storage=sqlite_url, objective=notebook_objective)
    assert search.spec.objective == "test_api:notebook_objective"  # importable by name
    report = search.report()
    assert str(report).startswith("search nb: loss (minimize)") and "stage coarse" in report
    assert type(str(report)) is str and repr(report) == str(report)
    assert report._repr_html_().startswith("<pre>search nb: loss")
    regions = search.regions()
    assert regions["coarse"].space["lr"].low > 1e-5  # still the regions, by stage
    text = str(regions)
    assert (
        text.startswith("stage coarse: promising region (top ") and "handed to stage fine" in text
    )
    assert "lr 10^" in text and "(was 10^" in text and "Region(" not in text + repr(regions)
    assert "ParamRegion" not in str(regions["coarse"])


SCRIPT = """
import sys
import hpsearch

def quad(params, epochs, report):
    return (params["lr"] - 0.1) ** 2

SPEC = {spec!r}
{launch}
"""


def _script(tmp_path, launch, name="train.py"):
    import os
    import subprocess
    import sys

    path = tmp_path / name
    body = SCRIPT.format(spec={**SPEC, "name": "s"}, launch=launch)
    path.write_text(body)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), str(tmp_path.parent)])}
    url = f"sqlite:///{tmp_path / 's.db'}"
    return subprocess.run(
        [sys.executable, str(path), url], capture_output=True, text=True, env=env, cwd=tmp_path
    )


def test_a_function_of_a_script_is_stored_by_the_scripts_module(tmp_path):
    r = _script(
        tmp_path,
        'if __name__ == "__main__":\n'
        "    s = hpsearch.launch(SPEC, storage=sys.argv[1], objective=quad, progress=False)\n"
        "    print(s.spec.objective)",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "train:quad"


def test_a_function_in_main_that_workers_cannot_import_is_refused_with_the_reason(tmp_path):
    launch = "hpsearch.launch(SPEC, storage=sys.argv[1], objective=quad, workers=2)"
    r = _script(tmp_path, launch)  # no __main__ guard: each worker would run it again
    assert r.returncode == 1 and "UserError" in r.stderr, r.stderr
    assert 'no `if __name__ == "__main__":` guard' in r.stderr and "workers=1" in r.stderr
    assert not (tmp_path / "s.db").exists()  # refused before anything was stored


def test_a_function_of_a_notebook_is_refused_for_several_workers(tmp_path):
    """``__main__`` with no file (a notebook, ``python -c``): no worker process can import
    it, so several workers are refused with the reason; one worker runs it here."""
    import os
    import subprocess
    import sys

    code = SCRIPT.format(
        spec={**SPEC, "name": "c"},
        launch="hpsearch.launch(SPEC, storage=sys.argv[1], objective=quad, workers=2)",
    )
    url = f"sqlite:///{tmp_path / 'c.db'}"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    r = subprocess.run(
        [sys.executable, "-c", code, url], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert r.returncode == 1 and "is defined in __main__ (a notebook" in r.stderr, r.stderr
    assert "define it in a module" in r.stderr and "or use workers=1" in r.stderr
