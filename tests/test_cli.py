"""The command line as a user runs it: real processes, real files, exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cli_runner import hpsearch
from click.testing import CliRunner
from stubs import toy_study

from hpsearch import examples
from hpsearch.cli import main


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
        "from hpsearch.objectives.catalog import parse_spec\n"
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

    study.write_text(toy_study(coarse=12, fine=4).replace("epochs = 1", "epochs = 2"))
    r = hpsearch("launch", str(study), cwd=tmp_path)
    assert r.returncode == 2
    assert "stage[0].epochs: stored 1, file 2" in r.stderr

    r = hpsearch("status", "nosuch", cwd=tmp_path)
    assert r.returncode == 2 and "no search named 'nosuch'" in r.stderr and "toy" in r.stderr


def test_storage_from_the_environment(tmp_path):
    study = tmp_path / "toy.toml"
    study.write_text(toy_study(coarse=4, fine=2))
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    r = hpsearch("launch", str(study), cwd=tmp_path, env={"HPSEARCH_STORAGE": url})
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "elsewhere.db").exists() and not (tmp_path / "hpsearch.db").exists()


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


def test_an_unusable_storage_url_exits_2_with_the_fix_and_without_its_password(tmp_path):
    r = hpsearch("status", "toy", "--storage", "mysql://u:s3cret@db/x", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "pip install 'pymysql' and write mysql+pymysql://u:***@db/x" in r.stderr
    assert "s3cret" not in r.stderr + r.stdout and "Traceback" not in r.stderr


MISSING_DRIVER = "mysql+mysqldb://u:s3cret@db/x"


@pytest.mark.parametrize(
    "args",
    [
        ["status", "toy"],
        ["report", "toy"],
        ["worker", "toy"],
        ["dashboard"],
        ["launch", "{study}"],
        ["launch", "--dry-run", "{study}"],
        ["compare", "{study}"],
    ],
)
def test_every_command_checks_the_storage_url_before_using_it(tmp_path, args):
    """Through $HPSEARCH_STORAGE too, which the message names as the source."""
    pytest.importorskip("sqlalchemy")
    try:
        import MySQLdb  # noqa: F401

        pytest.skip("mysqlclient is installed here")
    except ImportError:
        pass
    study = tmp_path / "toy.toml"
    study.write_text(toy_study())
    args = [a.format(study=study) for a in args]
    r = CliRunner().invoke(main, args, env={"HPSEARCH_STORAGE": MISSING_DRIVER})
    assert r.exit_code == 2, r.output
    assert "$HPSEARCH_STORAGE mysql+mysqldb://u:***@db/x" in r.output
    assert "pip install 'mysqlclient'" in r.output and "s3cret" not in r.output
    assert not list(tmp_path.glob("*.db"))


@pytest.mark.parametrize(
    ("url", "fix"),
    [
        ("postgres://u:s3cret@db/x", "write postgresql://, not postgres://"),
        ("nosuchdriver://u:s3cret@db/x", "unsupported database 'nosuchdriver'"),
        ("postgresql://u:p@ss@db/x", "write it URL-encoded as %40"),
        ("sqlite:///no/such/folder/x.db", "the folder"),
    ],
)
def test_unusable_storage_urls_exit_2_with_the_fix(tmp_path, url, fix):
    r = CliRunner().invoke(
        main, ["status", "toy", "--storage", url], env={"HPSEARCH_STORAGE": None}
    )
    assert r.exit_code == 2, r.output
    assert f"--storage {url.replace('s3cret', '***').replace('p@ss', '***')}:" in r.output
    assert fix in r.output and "s3cret" not in r.output and "p@ss" not in r.output


def test_launch_into_a_missing_folder_names_it_and_creates_nothing(tmp_path):
    study = tmp_path / "toy.toml"
    study.write_text(toy_study())
    url = f"sqlite:///{tmp_path / 'nodir' / 'x.db'}"
    r = hpsearch("launch", str(study), "--storage", url, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert f"the folder {tmp_path / 'nodir'} does not exist; create it first" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "nodir").exists()


CNN_STUDY = """
name = "cnn-typo"
[fixed]
{fixed}
[space.lr]
low = 1e-3
high = 1.0
log = true
[[stage]]
name = "coarse"
trials = 4
"""


@pytest.mark.parametrize(
    ("fixed", "option", "message"),
    [
        ('optimiser = "sgd"', [], "fixed.optimiser: unknown key; did you mean `optimizer`?"),
        ('dataset = "digitz"', [], "fixed.dataset: must be one of 'digits', 'cifar10', but"),
        (
            "",
            ["--device", "gpu"],
            "Invalid value for '--device': 'gpu' is not one of 'auto', 'cpu', 'cuda', "
            "'cuda:N', 'mps'",
        ),
    ],
)
def test_mistakes_the_built_in_objective_would_fail_on_exit_2_before_anything_runs(
    tmp_path, fixed, option, message
):
    study = tmp_path / "cnn.toml"
    study.write_text(CNN_STUDY.format(fixed=fixed))
    for dry_run in ([], ["--dry-run"]):
        r = hpsearch("launch", *dry_run, *option, str(study), cwd=tmp_path)
        assert r.returncode == 2, r.stderr
        assert message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "hpsearch.db").exists()


def test_dry_run_loads_the_built_in_objectives_data(tmp_path):
    study = tmp_path / "cnn.toml"
    study.write_text(CNN_STUDY.format(fixed='dataset = "cifar10"\ndata_dir = "missing"'))
    r = hpsearch("launch", "--dry-run", str(study), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "fixed.data_dir: CIFAR-10 data_dir" in r.stderr and "lacks data_batch_1" in r.stderr
    study.write_text(CNN_STUDY.format(fixed='dataset = "digits"'))
    r = hpsearch("launch", "--dry-run", str(study), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "coarse: 4 trials" in r.stdout and not (tmp_path / "hpsearch.db").exists()
    r = hpsearch("launch", "--dry-run", "--device", "cuda:99", str(study), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "Error: --device: `device = 'cuda:99'` was asked for, but torch sees" in r.stderr


def test_a_name_too_long_to_store_exits_2_the_same_on_every_backend(tmp_path, storage_url):
    import sqlalchemy as sa

    study = tmp_path / "long.toml"
    study.write_text(toy_study(name="n" * 600))
    r = hpsearch("launch", str(study), "--storage", storage_url, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "name: is 600 characters, too long to store" in r.stderr
    assert "Traceback" not in r.stderr
    engine = sa.create_engine(storage_url)
    try:
        assert sa.inspect(engine).get_table_names() == []  # nothing written
    finally:
        engine.dispose()


def test_quiet_and_verbose_work_on_every_command_before_or_after_it():
    import logging

    from hpsearch.cli import main

    for name, command in main.commands.items():
        options = {opt for p in command.params for opt in getattr(p, "opts", [])}
        assert {"-q", "-v", "--quiet", "--verbose"} <= options, name
    runner = CliRunner()
    root = logging.getLogger()
    before = root.level
    try:
        for args, level in (
            (["-v", "example"], logging.INFO),
            (["example", "-vv"], logging.DEBUG),
            (["example", "-q"], logging.ERROR),
            (["-q", "example"], logging.ERROR),
        ):
            root.setLevel(logging.WARNING)
            assert runner.invoke(main, args).exit_code == 0, args
            assert root.level == level, args
    finally:
        root.setLevel(before)  # in-process: the level must not leak into other tests
