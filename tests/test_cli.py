"""The command line as a user runs it: real processes, real files, exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cli_runner import hpsearch
from stubs import toy_study

from hpsearch import examples
from hpsearch.urls import mask_url


def test_help_and_examples_are_instant_because_nothing_heavy_is_imported():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from hpsearch.cli import main\n"
        "r = CliRunner().invoke(main, ['--help'])\n"
        "assert r.exit_code == 0 and 'launch' in r.output, r.output\n"
        "assert 'hpsearch example' in r.output and 'studies/' not in r.output, r.output\n"
        "r = CliRunner().invoke(main, ['example', 'quickstart'])\n"
        "assert r.exit_code == 0 and 'name = \"quickstart\"' in r.output, r.output\n"
        "from hpsearch.spec import parse_spec\n"
        "heavy = ('torch', 'optuna', 'sqlalchemy', 'plotly', 'pandas', 'sklearn')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_bad_study_file_exits_2_names_the_field_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        toy_study().replace("low = 1e-5", "low = 0").replace("trials = 20", "trails = 20")
    )
    r = hpsearch("launch", str(bad), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "space.lr.low: `low > 0` must hold for `log = true`, but got low = 0" in r.stderr
    assert "stage[0].trails: unknown key; did you mean `trials`?" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "hpsearch.db").exists()


def test_objective_that_cannot_be_imported_exits_2_before_storage(tmp_path):
    study = tmp_path / "s.toml"
    study.write_text(toy_study(objective="missing_function"))
    r = hpsearch("launch", str(study), cwd=tmp_path)
    assert r.returncode == 2
    assert "objective: module 'stubs' has no attribute 'missing_function'" in r.stderr
    assert not (tmp_path / "hpsearch.db").exists()


def test_launch_status_report_resume_and_refusal(tmp_path):
    study = tmp_path / "toy.toml"
    study.write_text(toy_study(coarse=12, fine=4))
    r = hpsearch("launch", str(study), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "stage coarse: 12/12 trials" in r.stdout and "promising region" in r.stdout
    assert "lr 10^" in r.stdout

    r = hpsearch("status", "toy", cwd=tmp_path)
    assert r.returncode == 0 and "12/12" in r.stdout and "4/4" in r.stdout

    r = hpsearch("report", "toy", cwd=tmp_path)
    assert r.returncode == 0 and "stage fine: 4/4 trials" in r.stdout

    r = hpsearch("launch", str(study), cwd=tmp_path)  # resume: nothing left to do
    assert r.returncode == 0 and "resuming" in r.stderr and "0 completed" in r.stderr

    study.write_text(toy_study(coarse=13, fine=4))
    r = hpsearch("launch", str(study), cwd=tmp_path)
    assert r.returncode == 2
    assert "stage[0].trials: stored 12, file 13" in r.stderr

    r = hpsearch("status", "nosuch", cwd=tmp_path)
    assert r.returncode == 2 and "no search named 'nosuch'" in r.stderr and "toy" in r.stderr


def test_storage_from_the_environment(tmp_path):
    study = tmp_path / "toy.toml"
    study.write_text(toy_study(coarse=4, fine=2))
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    r = hpsearch("launch", str(study), cwd=tmp_path, env={"HPSEARCH_STORAGE": url})
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "elsewhere.db").exists() and not (tmp_path / "hpsearch.db").exists()


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u:s3cret@db:5432/x", "postgresql://u:***@db:5432/x"),
        ("postgresql+psycopg://u:p%40ss@h/x", "postgresql+psycopg://u:***@h/x"),
        ("sqlite:///a.db", "sqlite:///a.db"),
        ("postgresql://u@h/x", "postgresql://u@h/x"),
    ],
)
def test_passwords_are_masked(url, masked):
    assert mask_url(url) == masked


@pytest.mark.slow
def test_quickstart_like_search_trains_the_real_cnn(tmp_path):
    """The tiny real training run: the built-in CNN through the whole CLI."""
    study = tmp_path / "mini.toml"
    study.write_text(
        examples.read("quickstart")
        .replace('name = "quickstart"', 'name = "mini"')
        .replace("trials = 40", "trials = 6")
        .replace("trials = 10", "trials = 2")
        .replace("epochs = 5", "epochs = 2")
    )
    r = hpsearch("launch", str(study), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "stage coarse: 6/6 trials" in r.stdout and "stage fine: 2/2 trials" in r.stdout

    import optuna

    trials = optuna.load_study(
        study_name="mini/fine", storage=f"sqlite:///{tmp_path / 'hpsearch.db'}"
    ).trials
    assert all(len(t.intermediate_values) == 2 for t in trials)
    assert all("val_accuracy" in t.user_attrs and "curve_val_loss" in t.user_attrs for t in trials)


def test_an_unusable_storage_url_exits_2_without_its_password(tmp_path):
    r = hpsearch("status", "toy", "--storage", "nosuchdriver://u:s3cret@db/x", cwd=tmp_path)
    assert r.returncode == 2
    assert "--storage: cannot use this URL" in r.stderr
    assert "s3cret" not in r.stderr + r.stdout and "Traceback" not in r.stderr
