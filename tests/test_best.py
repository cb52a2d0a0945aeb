"""``hpsearch best``: the winner at full precision, pasted back as TOML, and retrained."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import pytest
from cli_runner import hpsearch
from stored import stage_study
from stubs import toy_study

from hpsearch import examples
from hpsearch.core.records import TrialRecord, recommended

#: [fixed] values of every TOML kind a study file may hold, and a float that only reads
#: back exactly at full precision.
FIXED = """[fixed]
offset = 0.1234567890123456789
batch = 32
tag = "run \\"one\\""
flags = [true, false]
sizes = [1, 2.5]
"""


def seeded_study(name: str = "toy", coarse: int = 8, fine: int = 3) -> str:
    return toy_study(name=name, objective="seeded", coarse=coarse, fine=fine).replace(
        "[space.lr]", FIXED + "[space.lr]"
    )


def launched(tmp_path: Path, url: str, body: str) -> subprocess.CompletedProcess:
    study = tmp_path / "toy.toml"
    study.write_text(body)
    r = hpsearch("launch", str(study), "--storage", url, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return r


def best(tmp_path: Path, url: str, *args: str) -> dict:
    r = hpsearch("best", "toy", "--storage", url, "--format", "json", *args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.slow_on("sqlite")
def test_best_is_the_best_of_the_longest_runs_as_optuna_reads_it(storage_url, tmp_path):
    r = launched(tmp_path, storage_url, seeded_study())
    last = r.stdout.strip().splitlines()[-1]

    fine = stage_study(storage_url, "toy", "fine").best_trial  # the 2-epoch stage
    fixed = tomllib.loads(FIXED)["fixed"]
    out = best(tmp_path, storage_url)
    assert out["params"] == {**fixed, **fine.params}
    assert out["value"] == fine.value and out["trial"] == fine.number
    assert out["stage"] == "fine" and out["epochs"] == 2
    assert out["seed"] == fine.user_attrs["seed"] and out["split_seed"] is None
    assert sorted(out["fixed"]) == sorted(fixed)

    coarse = stage_study(storage_url, "toy", "coarse").best_trial
    out = best(tmp_path, storage_url, "--stage", "coarse")
    assert (out["value"], out["trial"], out["epochs"]) == (coarse.value, coarse.number, 1)

    # launch's last line names the winner and where to look further
    assert f"(stage fine, trial {fine.number})" in last and f"{fine.value:.6g}" in last
    for command in ("hpsearch report toy", "hpsearch best toy", "hpsearch dashboard"):
        assert f"{command} --storage " in last

    r = hpsearch("best", "toy", "--storage", storage_url, "--stage", "nope", cwd=tmp_path)
    assert r.returncode == 2 and "--stage nope" in r.stderr and "coarse, fine" in r.stderr


@pytest.mark.slow  # a search, best in three formats and a launch of the pasted file
def test_text_has_full_precision_and_toml_pastes_back_into_a_study_file(sqlite_url, tmp_path):
    launched(tmp_path, sqlite_url, seeded_study())
    out = best(tmp_path, sqlite_url)

    r = hpsearch("best", "toy", "--storage", sqlite_url, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert repr(out["value"]) in r.stdout and f"trial seed {out['seed']}" in r.stdout
    for key in ("lr", "wd", "offset"):
        assert f"{key} = {out['params'][key]!r}" in " ".join(r.stdout.split())

    r = hpsearch("best", "toy", "--storage", sqlite_url, "--format", "toml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert tomllib.loads(r.stdout)["fixed"] == out["params"]
    # pasted as the [fixed] table of a new study that searches something else
    pasted = tmp_path / "final.toml"
    pasted.write_text(
        'name = "final"\nobjective = "stubs:seeded"\nmetric = "loss"\n'
        + r.stdout
        + '\n[space.width]\nchoices = [1, 2]\n[[stage]]\nname = "only"\ntrials = 2\nepochs = 3\n'
    )
    r = hpsearch("launch", str(pasted), "--dry-run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr


@pytest.mark.slow  # the built-in CNN's retrain below is the quick run's retrain
def test_retrain_reproduces_the_stored_value_exactly(storage_url, tmp_path):
    launched(tmp_path, storage_url, seeded_study())
    stored = best(tmp_path, storage_url)
    again = best(tmp_path, storage_url, "--retrain")
    assert again["value"] == stored["value"] and again["reproduced"] is True
    assert again["epochs"] == 2 and again["trial"] == stored["trial"]

    longer = best(tmp_path, storage_url, "--retrain", "--epochs", "5")
    assert longer["epochs"] == 5 and longer["reproduced"] is None
    assert longer["value"] != stored["value"]

    r = hpsearch("best", "toy", "--storage", storage_url, "--retrain", cwd=tmp_path)
    assert r.returncode == 0 and "the stored value exactly" in r.stdout, r.stderr

    # the stub writes no model: --save says so instead of claiming one was saved
    r = hpsearch(
        "best", "toy", "--storage", storage_url, "--retrain", "--save", "m.pt", cwd=tmp_path
    )
    assert r.returncode == 1 and "params['save_path']" in r.stderr
    r = hpsearch("best", "toy", "--storage", storage_url, "--save", "m.pt", cwd=tmp_path)
    assert r.returncode == 2 and "--save only applies with --retrain" in r.stderr


def test_best_of_a_search_without_results_says_why(tmp_path):
    study = tmp_path / "toy.toml"
    only_tanh = toy_study(objective="crash_on_tanh", coarse=2, fine=1).replace(
        'choices = ["relu", "tanh"]', 'choices = ["tanh"]'
    )
    study.write_text(only_tanh)
    hpsearch("launch", str(study), cwd=tmp_path)  # every trial fails
    r = hpsearch("best", "toy", cwd=tmp_path)
    assert r.returncode == 2 and "no trial of search toy has given a usable value" in r.stderr
    r = hpsearch("best", "nosuch", cwd=tmp_path)
    assert r.returncode == 2 and "no search named 'nosuch'" in r.stderr


def test_the_built_in_cnn_retrains_to_the_stored_value_and_saves_its_model(tmp_path):
    import torch

    from hpsearch.training.data import DataConfig, load_data
    from hpsearch.training.loop import evaluate
    from hpsearch.training.model import CNN, CNNConfig

    study = tmp_path / "cnn.toml"
    study.write_text(
        examples.read("quickstart")
        .replace('name = "quickstart"', 'name = "toy"')
        .replace('optimizer = "sgd"', 'optimizer = "sgd"\nwidth = 4\ndepth = 1')
        .replace("trials = 40", "trials = 2")
        .split('[[stage]]\nname = "fine"')[0]
    )
    r = hpsearch("launch", str(study), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.rstrip().endswith("hpsearch best toy, hpsearch dashboard")  # no --storage
    url = f"sqlite:///{tmp_path / 'hpsearch.db'}"
    stored = best(tmp_path, url)
    assert stored["split_seed"] == 0 and stored["params"]["dataset"] == "digits"

    again = best(tmp_path, url, "--retrain", "--save", "model.pt")
    assert again["value"] == stored["value"] and again["reproduced"] is True
    assert again["device"] == "cpu" and again["saved"] == str(tmp_path / "model.pt")

    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    config = saved["config"]
    assert config["data"]["split_seed"] == 0 and config["model"]["width"] == 4
    model = CNN(CNNConfig(**config["model"]))
    model.load_state_dict(saved["state_dict"])
    data = load_data(DataConfig(**config["data"]))
    assert torch.equal(saved["preprocess"]["shift"], data.shift)
    val_loss, _ = evaluate(model, data.x_val, data.y_val)
    assert val_loss == pytest.approx(stored["value"], rel=1e-6)  # the trained weights


def test_best_never_creates_a_database(tmp_path):
    r = hpsearch("best", "toy", cwd=tmp_path)
    assert r.returncode == 2 and "no such SQLite file" in r.stderr
    assert not (tmp_path / "hpsearch.db").exists()


def test_the_recommended_trial_is_the_best_usable_one_among_the_longest_runs():
    def rec(number: int, value: float | None, epochs: int, **kw) -> TrialRecord:
        state = kw.pop("state", "COMPLETE")
        return TrialRecord(number, "s", state, {}, value=value, epochs=epochs, **kw)

    records = [
        rec(0, 0.1, 1),  # the best value, but after one epoch
        rec(1, 0.5, 3),
        rec(2, 0.4, 3),
        rec(3, 0.0, 3, attrs={"diverged": True}),
        rec(4, 0.2, 3, superseded=True),
        rec(5, None, 5, state="FAIL"),  # the longest, but no value
        rec(6, None, 9, state="RUNNING"),
    ]
    assert recommended(records, "minimize").number == 2
    assert recommended(records, "maximize").number == 1
    assert recommended(records[5:], "minimize") is None
