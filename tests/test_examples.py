"""The study files of ``studies/`` and their copies in the package: one source, each
validated, listed, printed, written out and launched; the README's sample is one of them."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from cli_runner import hpsearch

from hpsearch import examples
from hpsearch.engine.loader import prepare_params
from hpsearch.objectives.catalog import load_spec

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ROOT / "studies"
NAMES = ["cifar10_cnn", "custom_objective", "digits_cnn", "grid_baseline", "quickstart"]
LISTED = [*NAMES, "my_objective.py"]  # the objective custom_objective imports, last


def test_example_without_name_lists_every_example_with_its_summary(tmp_path):
    r = hpsearch("example", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = r.stdout.splitlines()
    assert [row.split()[0] for row in rows] == LISTED
    assert "Quickstart: the coarse-to-fine recipe" in r.stdout
    assert "hpsearch example NAME > NAME.toml" in r.stderr  # the hint stays out of stdout


def test_example_prints_the_packaged_toml_exactly(tmp_path):
    r = hpsearch("example", "quickstart", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == examples.read("quickstart")
    assert tomllib.loads(r.stdout)["name"] == "quickstart"


def test_an_unknown_example_exits_2_naming_the_examples(tmp_path):
    r = hpsearch("example", "quikstart", cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    assert "example 'quikstart': no such example" in r.stderr
    assert ", ".join(LISTED) in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=[pytest.mark.slow] * (n != "quickstart")) for n in NAMES]
)  # each a torch import: the CNN examples run under -m slow
def test_a_written_out_example_launches_from_any_folder(tmp_path, name):
    """``hpsearch example NAME > NAME.toml && hpsearch launch NAME.toml``, checked with
    ``--dry-run``, which validates the file and prints the plan without running it."""
    path = tmp_path / f"{name}.toml"
    path.write_text(hpsearch("example", name, cwd=tmp_path).stdout)
    if name == "custom_objective":  # its objective, written out beside it
        (tmp_path / "my_objective.py").write_text(
            hpsearch("example", "my_objective.py", cwd=tmp_path).stdout
        )
    r = hpsearch("launch", path.name, "--dry-run", cwd=tmp_path)
    assert not (tmp_path / "hpsearch.db").exists()
    if name == "cifar10_cnn":  # the dry run loads the data, which the user brings
        assert r.returncode == 2 and "fixed.data_dir: CIFAR-10 data_dir" in r.stderr
        return
    assert r.returncode == 0, r.stderr
    spec = load_spec(path)
    assert f"search {spec.name}: {spec.metric} (minimize)" in r.stdout


def test_the_cifar10_data_dir_is_read_beside_the_written_out_file(tmp_path, monkeypatch):
    """A relative ``data_dir`` means the folder the file was written to, wherever the
    search is launched from (the package's own folder plays no part)."""
    folder = tmp_path / "mine"
    (folder / "data" / "cifar-10-batches-py").mkdir(parents=True)
    (folder / "cifar10.toml").write_text(examples.read("cifar10_cnn"))
    monkeypatch.chdir(tmp_path)  # launched from the folder above
    spec = load_spec(Path("mine/cifar10.toml"))
    data_dir = prepare_params(spec, dict(spec.fixed))["data_dir"]
    assert Path(data_dir).resolve() == folder / "data" / "cifar-10-batches-py"


def test_studies_and_the_packaged_examples_are_one_source():
    """``studies/`` is edited; ``scripts/sync_examples.py`` copies it into the package."""
    package = Path(examples.__file__).parent
    shipped = {p.name for p in package.iterdir() if p.suffix in (".toml", ".py")} - {"__init__.py"}
    assert shipped == {p.name for p in STUDIES.iterdir() if p.suffix in (".toml", ".py")}
    for name in sorted(shipped):
        assert (package / name).read_bytes() == (STUDIES / name).read_bytes(), (
            f"studies/{name} and hpsearch/examples/{name} differ: edit studies/{name}, then "
            "run python scripts/sync_examples.py"
        )


@pytest.mark.parametrize("name", NAMES)
def test_each_study_validates_and_its_dry_run_lists_parameter_kinds(tmp_path, name):
    r = hpsearch("launch", str(STUDIES / f"{name}.toml"), "--dry-run", cwd=tmp_path)
    assert not (tmp_path / "hpsearch.db").exists()
    if name == "cifar10_cnn":  # the dry run loads the data, which the user brings
        assert r.returncode == 2 and "fixed.data_dir: CIFAR-10 data_dir" in r.stderr
        return
    assert r.returncode == 0, r.stderr
    assert "  space:" in r.stdout and "lr: float, log, " in r.stdout
    if name == "custom_objective":
        assert "batch_size: int, log, 8 .. 128" in r.stdout
    if name == "digits_cnn":
        assert "optimizer: categorical, {sgd, adam}" in r.stdout


def test_the_custom_objective_trains_and_reports_each_epoch():
    import importlib.util

    spec = importlib.util.spec_from_file_location("my_objective", STUDIES / "my_objective.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    seen, logged = [], {}

    class Report:
        seed = 3

        def __call__(self, epoch, value):
            seen.append((epoch, value))

        def log(self, **kw):
            logged.update(kw)

    params = {"lr": 0.05, "weight_decay": 1e-4, "batch_size": 32}
    value = module.fit(params, 4, Report())
    assert [e for e, _ in seen] == [1, 2, 3, 4] and value == seen[-1][1] < seen[0][1] < 5
    assert "train_mse" in logged
    assert module.fit({**params, "lr": 5.0}, 2, Report()) == 1e6 and logged["diverged"]


def test_the_readme_starts_with_the_quickstart_study_and_shows_the_shipped_digits_file():
    readme = (ROOT / "README.md").read_text()
    first = next(line for line in readme.splitlines() if line.startswith("python3 -m venv"))
    assert first.endswith("&& hpsearch launch studies/quickstart.toml")
    sample = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    assert sample == (STUDIES / "digits_cnn.toml").read_text()
